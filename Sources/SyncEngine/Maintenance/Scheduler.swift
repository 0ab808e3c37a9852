import Foundation
import Logging
import ServiceLifecycle
import SyncCore
import SyncStore

/// Queues syncs for sources with a `schedule`. Every `interval`: each source whose
/// `every_seconds` have passed since its last sync was queued (by anyone) and that has no
/// active sync gets one with trigger `schedule`; each cron source whose slot is due gets one
/// sync for that slot (docs/queue.md, "Cron schedules"). Every node may run one: the store's
/// transactions and the one-active-sync index make a second enqueue impossible, and a cron
/// slot is taken by exactly one scheduler (its `next_slot_at` moves in the same transaction).
public struct Scheduler: Service {
    let store: any QueueMaintenance
    let interval: Duration
    let logger: Logger
    let clock: @Sendable () -> Date
    let random: @Sendable () -> Double

    /// A slot found later than this is a missed slot (the nodes were down): `missed` decides.
    public static let lateAfterSeconds: Double = 60

    public init(store: any QueueMaintenance, interval: Duration = .seconds(1), logger: Logger = Logger(label: "tributary.scheduler"),
                clock: @escaping @Sendable () -> Date = { Date() }, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.store = store
        self.interval = interval
        self.logger = logger
        self.clock = clock
        self.random = random
    }

    public func run() async throws {
        await runPeriodically(every: interval, logger: logger, failure: "scheduling failed") {
            let queued = try await tick()
            if !queued.isEmpty {
                logger.info("queued scheduled syncs", metadata: ["sync_ids": .string(queued.joined(separator: ","))])
            }
        }
    }

    /// One round: the due `every_seconds` sources, then the due cron slots. Returns the syncs queued.
    public func tick() async throws -> [String] {
        let now = clock()
        var queued = try await store.enqueueDueSchedules(now: now)
        for source in try await store.dueCronSources(now: now) {
            guard let cron = source.cron, let (expression, zone) = cron.parsed else { continue }
            let next = expression.next(after: now, in: zone)
            guard let slot = source.nextSlotAt else {
                // First sight of this schedule: its first slot is the next one; nothing runs now.
                _ = try await store.takeCronSlot(sourceID: source.id, slot: nil, next: next, enqueue: false, runAt: now, now: now)
                continue
            }
            // A slot found late (the cluster was down) runs only if `missed` is `one`; the
            // slots missed between it and now are passed over: at most one catch-up sync.
            let late = now.timeIntervalSince(slot) > Self.lateAfterSeconds
            let runAt = now.addingTimeInterval(max(0, cron.jitterSeconds) * random())
            let outcome = try await store.takeCronSlot(sourceID: source.id, slot: slot, next: next,
                                                       enqueue: !late || cron.missed == .one, runAt: runAt, now: now)
            switch outcome {
            case .queued(let id): queued.append(id)
            case .skippedBusy:
                logger.info("cron slot skipped: the previous sync is still active", metadata: [
                    "source_id": .string(source.id), "slot": .string(Timestamp.format(slot)),
                ])
            case .taken, .advanced: break
            }
        }
        return queued
    }
}
