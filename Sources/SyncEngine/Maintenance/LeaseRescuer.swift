import Foundation
import Logging
import ServiceLifecycle
import SyncCore
import SyncStore

/// Returns syncs whose worker died (their lease expired) to the queue, so another
/// worker resumes them from their checkpoint (invariant 3, docs/architecture.md); the
/// store wakes the workers. Idempotent: every node runs one.
public struct LeaseRescuer: Service {
    let store: any QueueMaintenance
    let interval: Duration
    let logger: Logger
    let metrics: TributaryMetrics

    public init(store: any QueueMaintenance, interval: Duration, metrics: TributaryMetrics = .discarding(),
                logger: Logger = Logger(label: "tributary.rescuer")) {
        self.metrics = metrics
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        // rescueOnce logs its own failures.
        await runPeriodically(every: interval, logger: logger, failure: "lease rescue failed") { await rescueOnce() }
    }

    /// One pass; returns the rescued sync ids.
    @discardableResult
    public func rescueOnce() async -> [String] {
        do {
            let rescued = try await store.rescueExpiredLeases(now: Date())
            metrics.leasesRescued(rescued.count)
            if !rescued.isEmpty {
                logger.warning("rescued syncs whose lease expired", metadata: ["sync_ids": .string(rescued.joined(separator: ","))])
            }
            return rescued
        } catch {
            // A pass cut short by the shutdown is not a failure.
            if !(Task.isCancelled || error is CancellationError) { logger.error("lease rescue failed: \(error)") }
            return []
        }
    }
}
