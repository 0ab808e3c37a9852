import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SyncConnectors
import SyncCore
import SyncEngine
import SyncStore

/// Enqueue-to-running latency with a deep queue: a node's workers (and its event relay, the
/// in-process bus on SQLite, LISTEN/NOTIFY on PostgreSQL) idle beside `--waiting` queued
/// syncs due an hour from now; syncs are queued one at a time and each one's
/// `started_at − queued_at` is taken from the database.
struct EnqueueLatency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue-latency", abstract: "Time from enqueue to running, one sync at a time, beside many waiting syncs.")

    @Option(help: "sqlite:PATH or postgres://… of a migrated database (its syncs are replaced).") var database: String
    @Option(help: "Queued syncs waiting (due in an hour) while the samples run.") var waiting = 10_000
    @Option(help: "Syncs to time.") var samples = 300

    func run() async throws {
        let store = try openStore(database)
        let now = Date()
        // The waiting syncs: one source each, due in an hour.
        var batch: [Source] = []
        for i in 0..<(waiting + samples) {
            batch.append(Source(id: Identifier.make("src", now: now), name: "lat-\(i)", kind: "synthetic",
                                config: ["records": .number(1), "page_size": .number(1)], createdAt: now, updatedAt: now))
        }
        for source in batch { _ = try await store.createSource(source) }
        let later = now.addingTimeInterval(3600)
        for source in batch.prefix(waiting) {
            _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api, now: later))
        }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let pool = WorkerPool(store: store, kinds: .builtIn, configuration: EngineConfiguration(workers: 4, nodeID: "bench"), logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: pool), .init(service: StoreEventRelay(source: store, workers: pool, logger: logger))],
                                                      logger: logger))
        let running = Task { try await group.run() }
        try await Task.sleep(for: .seconds(1))  // the relay listens
        var latencies: [Double] = []
        for source in batch.suffix(samples) {
            let queued = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api, now: Date())).sync
            var started: Date?
            while started == nil {
                try await Task.sleep(for: .milliseconds(2))
                started = try await store.sync(id: queued.id)?.startedAt
            }
            latencies.append(started!.timeIntervalSince(queued.queuedAt) * 1000)
        }
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        let depth = try await store.healthSnapshot(now: Date()).queued
        print("| \(depth) queued | enqueue→running p50 \(ClaimLatency.percentile(latencies, 0.5)) ms, p99 \(ClaimLatency.percentile(latencies, 0.99)) ms | \(latencies.count) syncs |")
        await store.close()
    }
}
