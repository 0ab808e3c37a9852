import Foundation
import Logging
import ServiceLifecycle
import SyncStore

/// Queues syncs for sources with a `schedule`: every `interval`, each source whose
/// `every_seconds` have passed since its last sync was queued (by anyone) and that has no
/// active sync gets one with trigger `schedule`. Every node may run one: the store's
/// transaction and the one-active-sync index make a second enqueue impossible.
public struct Scheduler: Service {
    let store: any QueueMaintenance
    let interval: Duration
    let logger: Logger

    public init(store: any QueueMaintenance, interval: Duration = .seconds(1), logger: Logger = Logger(label: "tributary.scheduler")) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await runPeriodically(every: interval, logger: logger, failure: "scheduling failed") {
            let queued = try await store.enqueueDueSchedules(now: Date())
            if !queued.isEmpty {
                logger.info("queued scheduled syncs", metadata: ["sync_ids": .string(queued.joined(separator: ","))])
            }
        }
    }
}
