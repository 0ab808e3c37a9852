import ArgumentParser
import Foundation
import SyncCore
import SyncStore

/// `GET /v1/stats`'s store call on a database with a long history (`Benchmarks/history.sh`
/// fills it): each window timed over many runs.
struct StatsLatency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats-latency", abstract: "Time the statistics of each window on a database with many finished syncs.")

    @Option(help: "sqlite:PATH or postgres://… of a migrated, filled database.") var database: String
    @Option(help: "Runs per window.") var runs = 30

    func run() async throws {
        let store = try openStore(database)
        let clock = ContinuousClock()
        var cells: [String] = []
        for (name, seconds) in [("1h", 3_600.0), ("24h", 86_400.0), ("7d", 604_800.0), ("30d", 2_592_000.0)] {
            var times: [Double] = []
            var completed = 0
            for _ in 0..<runs {
                let start = clock.now
                let stats = try await store.statistics(window: seconds, now: Date())
                times.append(ClaimLatency.milliseconds(clock.now - start))
                completed = stats.counts[.completed] ?? 0
            }
            cells.append("\(name): p50 \(ClaimLatency.percentile(times, 0.5)) ms, p99 \(ClaimLatency.percentile(times, 0.99)) ms (\(completed) completed)")
        }
        print("| " + cells.joined(separator: " | ") + " |")
        await store.close()
    }
}

/// Pruning a long history while a worker claims: the time to prune, and the claim latency
/// seen meanwhile (one claim and its finish at a time, as in `claim-latency`).
struct PruneTime: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune-time", abstract: "Time a prune (30 days, newest 20 per source) while claims run; report the claim latency meanwhile.")

    @Option(help: "sqlite:PATH or postgres://… of a migrated, filled database.") var database: String
    @Option(help: "Syncs deleted per transaction.") var batch = 200

    func run() async throws {
        let store = try openStore(database)
        let clock = ContinuousClock()
        // The claimer queues each source again after its sync ends, so the queue stays as deep
        // for the whole prune; it times the claim and the finish.
        let claimer = Task { () -> [Double] in
            var times: [Double] = []
            while !Task.isCancelled {
                do {
                    let start = clock.now
                    guard let claimed = try await store.claimNext(owner: "bench", leaseSeconds: 30, now: Date()) else { break }
                    _ = try await store.finish(claimed.lease, outcome: .completed, now: Date())
                    times.append(ClaimLatency.milliseconds(clock.now - start))
                    _ = try await store.enqueue(EnqueueRequest(sourceID: claimed.sync.sourceID, mode: .full, priority: 0, trigger: .api))
                } catch {
                    break
                }
            }
            return times
        }
        let start = clock.now
        let deleted = try await store.prune(RetentionPolicy(olderThanSeconds: 30 * 86_400, keepLastPerSource: 20, batchSize: batch), now: Date())
        let seconds = ClaimLatency.milliseconds(clock.now - start) / 1000
        claimer.cancel()
        let times = await claimer.value
        print(String(format: "| deleted %d syncs in %.1f s (%.0f/s) | claim+finish during: %d, p50 %@ ms, p99 %@ ms, max %@ ms |",
                     deleted, seconds, Double(deleted) / seconds, times.count,
                     ClaimLatency.percentile(times, 0.5), ClaimLatency.percentile(times, 0.99), ClaimLatency.percentile(times, 1)))
        await store.close()
    }
}

func openStore(_ database: String) throws -> DatabaseStore {
    if database.hasPrefix("sqlite:") { return try DatabaseStore.sqlite(path: String(database.dropFirst("sqlite:".count))).start() }
    return try DatabaseStore.postgres(url: database).start()
}
