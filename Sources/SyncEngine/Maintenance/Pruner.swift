import Foundation
import Logging
import ServiceLifecycle
import SyncCore
import SyncStore

/// Keeps the history bounded: deletes the finished syncs the retention policy lets go, in
/// small batches (claims and page commits never wait long). Every node runs one; the
/// deletes are conditional, so pruners running at once delete each sync once.
public struct Pruner: Service {
    let store: any SyncHistory
    let policy: RetentionPolicy
    let interval: Duration
    let logger: Logger
    let metrics: TributaryMetrics

    public init(store: any SyncHistory, policy: RetentionPolicy, interval: Duration, metrics: TributaryMetrics = .discarding(),
                logger: Logger = Logger(label: "tributary.pruner")) {
        self.metrics = metrics
        self.store = store
        self.policy = policy
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await runPeriodically(every: interval, logger: logger, level: .warning, failure: "pruning failed") {
            let started = ContinuousClock.now
            let deleted = try await store.prune(policy, now: Date())
            metrics.syncsPruned(deleted)
            if deleted > 0 {
                logger.info("pruned finished syncs", metadata: [
                    "deleted_syncs": .stringConvertible(deleted),
                    "seconds": .stringConvertible(((ContinuousClock.now - started).inSeconds * 1000).rounded() / 1000),
                ])
            }
        }
    }
}
