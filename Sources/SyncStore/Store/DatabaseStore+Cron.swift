import Foundation
import SyncCore

/// What a scheduler's claim on a cron slot came to.
public enum CronSlotOutcome: Sendable, Equatable {
    /// Another node took the slot first (or the schedule changed): nothing was written.
    case taken
    /// The slot was passed (first computation, or a missed slot skipped): no sync.
    case advanced
    /// A sync was queued for the slot.
    case queued(syncID: String)
    /// The source's previous sync was still active: the slot was skipped and counted.
    case skippedBusy
}

extension DatabaseStore {
    /// Sources with a cron schedule whose next slot is due (or not computed yet), not paused.
    public func dueCronSources(now: Date) async throws -> [Source] {
        try await driver.read(["""
            SELECT * FROM sources WHERE schedule_cron IS NOT NULL AND NOT paused
              AND (next_slot_at IS NULL OR next_slot_at <= \(now.timeIntervalSince1970))
            ORDER BY id LIMIT 1000
            """])[0].map { try RowCoding.source($0) }
    }

    /// Takes the source's slot `slot` (`nil`: none computed yet) and moves its next slot to
    /// `next`, in one transaction under the source's row lock: of many schedulers, the one
    /// whose `slot` still matches wins; the others get ``CronSlotOutcome/taken``. With
    /// `enqueue`, a sync (trigger `schedule`) is queued to run at `runAt`, unless the source
    /// has an active sync: then the slot is skipped and counted (`skipped_slots`).
    public func takeCronSlot(sourceID: String, slot: Date?, next: Date?, enqueue: Bool, runAt: Date, now: Date) async throws -> CronSlotOutcome {
        let t = now.timeIntervalSince1970
        return try await driver.transact(StoreTransaction(facts: [
            "SELECT * FROM sources WHERE id = \(sourceID) \(sql: .forUpdate)",
            SyncStatements.activeSync(sourceID: sourceID),
        ]) { facts in
            guard let row = facts.first(0) else { return StoreDecision(writes: []) { _, _ in .taken } }
            let source = try RowCoding.source(row)
            let stored = try row.optionalDouble("next_slot_at")
            let matches = switch (stored, slot) {
            case (nil, nil): true
            case (let a?, let b?): abs(a - b.timeIntervalSince1970) < 0.000_5
            default: false
            }
            guard matches, source.cron != nil, !source.paused else { return StoreDecision(writes: []) { _, _ in .taken } }
            let move = StoreWrite("UPDATE sources SET next_slot_at = \(next.map { Timestamp.clamped($0).timeIntervalSince1970 }) WHERE id = \(sourceID)")
            guard enqueue else { return StoreDecision(writes: [move]) { _, _ in .advanced } }
            if facts.first(1) != nil {
                return StoreDecision(writes: [move, StoreWrite("UPDATE sources SET skipped_slots = skipped_slots + 1 WHERE id = \(sourceID)")]) { _, _ in .skippedBusy }
            }
            let id = Identifier.make("syn", now: now)
            let writes = [move] + SyncStatements.insertSync(id: id, source: source, mode: source.defaultMode, priority: source.priority,
                                                      trigger: .schedule, at: t, runAt: max(t, runAt.timeIntervalSince1970))
            return StoreDecision(writes: writes, events: [.wake]) { _, _ in .queued(syncID: id) }
        })
    }
}
