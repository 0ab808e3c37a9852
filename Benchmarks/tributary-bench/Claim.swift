import ArgumentParser
import Foundation
import SyncCore
import SyncStore

/// Claim latency with a deep queue: one claim (and the end of its attempt) at a time,
/// against a database already holding many queued syncs (`Benchmarks/claims.sh` fills it).
struct ClaimLatency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claim-latency",
        abstract: "Time claimNext and finish, one at a time, on a database with many queued syncs.")

    @Option(help: "sqlite:PATH or postgres://… of a migrated, filled database.") var database: String
    @Option(help: "Claims to time.") var claims = 500

    func run() async throws {
        let store = try openStore(database)
        defer { Task { await store.close() } }
        let queued = try await store.healthSnapshot(now: Date()).queued
        var claimTimes: [Double] = []
        var finishTimes: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<claims {
            let start = clock.now
            guard let claimed = try await store.claimNext(owner: "bench", leaseSeconds: 30, now: Date()) else { break }
            let claimedAt = clock.now
            _ = try await store.finish(claimed.lease, outcome: .completed, now: Date())
            let finishedAt = clock.now
            claimTimes.append(Self.milliseconds(claimedAt - start))
            finishTimes.append(Self.milliseconds(finishedAt - claimedAt))
        }
        print("| \(queued) queued | claim p50 \(Self.percentile(claimTimes, 0.5)) ms, p99 \(Self.percentile(claimTimes, 0.99)) ms"
              + " | finish p50 \(Self.percentile(finishTimes, 0.5)) ms, p99 \(Self.percentile(finishTimes, 0.99)) ms | \(claimTimes.count) claims |")
        await store.close()
    }

    static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    static func percentile(_ values: [Double], _ p: Double) -> String {
        guard !values.isEmpty else { return "-" }
        let sorted = values.sorted()
        return String(format: "%.2f", sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
    }
}
