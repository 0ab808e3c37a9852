import Foundation
import Logging
import ServiceLifecycle
import SyncStore

/// Returns syncs whose worker died (their lease expired) to the queue, so another
/// worker resumes them from their checkpoint (DESIGN.md invariant 3). Idempotent:
/// every node runs one.
public struct LeaseRescuer: Service {
    let store: any SyncStore
    let interval: Duration
    let wakeUp: WakeUpSignal
    let logger: Logger

    public init(store: any SyncStore, interval: Duration, wakeUp: WakeUpSignal, logger: Logger = Logger(label: "tributary.rescuer")) {
        self.store = store
        self.interval = interval
        self.wakeUp = wakeUp
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
            if !rescued.isEmpty {
                logger.warning("rescued syncs whose lease expired", metadata: ["sync_ids": .string(rescued.joined(separator: ","))])
                wakeUp.signal()
            }
            return rescued
        } catch {
            logger.error("lease rescue failed: \(error)")
            return []
        }
    }
}
