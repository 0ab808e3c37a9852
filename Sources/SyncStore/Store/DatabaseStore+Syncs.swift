import Foundation
import SyncCore

extension DatabaseStore: SyncRequests {
    /// An idempotency key seen before replays its sync (or is refused if the body differs);
    /// else at most one active sync per source, and at most one trigger per
    /// `min_trigger_interval_seconds`. Every write to a source's syncs reads the source row
    /// first, locking it on PostgreSQL, so these checks and the insert are serialised per source.
    public func enqueue(_ request: EnqueueRequest) async throws -> EnqueueOutcome {
        let sourceID = request.sourceID
        var facts: [StoreSQL] = [
            "SELECT * FROM sources WHERE id = \(sourceID) \(sql: .forUpdate)",
            SyncStatements.activeSync(sourceID: sourceID),
        ]
        if let key = request.idempotencyKey {
            facts.append("SELECT fingerprint, sync_id FROM idempotency_keys WHERE source_id = \(sourceID) AND key = \(key)")
        }
        return try await driver.transact(StoreTransaction(facts: facts) { facts in
            guard let sourceRow = facts.first(0) else { throw SyncStoreError.notFound("source \(sourceID)") }
            let source = try RowCoding.source(sourceRow)
            if let key = request.idempotencyKey, let seen = facts.first(2) {
                guard try seen.string("fingerprint") == request.requestFingerprint else { throw SyncStoreError.idempotencyKeyReused }
                let syncID = try seen.string("sync_id")
                return StoreDecision(then: SyncRows.sync(id: syncID)) { _, then in
                    guard let sync = try SyncRows.sync(then, at: 0) else { throw SyncStoreError.notFound("sync \(syncID) of key \(key)") }
                    return .replayed(sync)
                }
            }
            if let active = facts.first(1) { throw try SyncStatements.alreadyActive(active) }
            let now = request.now.timeIntervalSince1970
            if source.minTriggerIntervalSeconds > 0, let last = try sourceRow.optionalDouble("last_queued_at"),
               now - last < source.minTriggerIntervalSeconds {
                throw SyncStoreError.rateLimited(retryAfterSeconds: source.minTriggerIntervalSeconds - (now - last))
            }
            let id = Identifier.make("syn", now: request.now)
            var writes = SyncStatements.insertSync(
                id: id, source: source, mode: request.mode, priority: request.priority, trigger: request.trigger, at: now)
            if let key = request.idempotencyKey {
                writes.append(StoreWrite("""
                    INSERT INTO idempotency_keys (source_id, key, fingerprint, sync_id, created_at)
                    VALUES (\(source.id), \(key), \(request.requestFingerprint), \(id), \(now))
                    """))
            }
            return StoreDecision(writes: writes, events: [.wake], then: SyncRows.sync(id: id)) { _, then in
                .created(try SyncRows.written(then, id: id))
            }
        })
    }

    public func sync(id: String) async throws -> Sync? {
        try SyncRows.sync(try await driver.read(SyncRows.sync(id: id)), at: 0)
    }

    public func listSyncs(_ filter: SyncFilter, limit: Int, before: String?) async throws -> [Sync] {
        var clauses: [StoreSQL] = []
        if let before { clauses.append("id < \(before)") }
        if let sourceID = filter.sourceID { clauses.append("source_id = \(sourceID)") }
        if !filter.statuses.isEmpty { clauses.append("status \(in: filter.statuses)") }
        if let since = filter.since { clauses.append("queued_at >= \(since.timeIntervalSince1970)") }
        if let until = filter.until { clauses.append("queued_at < \(until.timeIntervalSince1970)") }
        let conditions = clauses.isEmpty ? StoreSQL("") : "WHERE \(sql: StoreSQL.joined(clauses, separator: " AND "))"
        let page: StoreSQL = "SELECT * FROM syncs \(sql: conditions) ORDER BY id DESC LIMIT \(limit)"
        let rows = try await driver.read([
            page,
            "SELECT * FROM sync_attempts WHERE sync_id IN (SELECT id FROM (\(sql: page)) AS page) ORDER BY sync_id, number",
        ])
        var attempts: [String: [SyncAttempt]] = [:]
        for row in rows[1] { attempts[try row.string("sync_id"), default: []].append(try RowCoding.attempt(row)) }
        return try rows[0].map { try RowCoding.sync($0, attempts: attempts[try $0.string("id")] ?? []) }
    }

    /// Queued or retrying: cancelled at once. Running: flagged, and the node running it is
    /// told (``StoreEvent/cancelRequested(syncID:)``); the worker ends it at its next check.
    /// Cancelled already: answered as it is. Completed or failed: refused.
    public func requestCancel(syncID: String, now: Date) async throws -> Sync {
        try await cancel(syncID: syncID, now: now).sync
    }

    /// ``requestCancel(syncID:now:)``, and whether this call changed the sync (cancelled it,
    /// or flagged it while it runs): decided under the sync's row lock, so of two calls
    /// racing for one sync exactly one says it did.
    public func cancel(syncID: String, now: Date) async throws -> (sync: Sync, changed: Bool) {
        let t = now.timeIntervalSince1970
        return try await driver.transact(StoreTransaction(facts: ["SELECT status, cancel_requested FROM syncs WHERE id = \(syncID) \(sql: .forUpdate)"]) { facts in
            guard let row = facts.first(0) else { throw SyncStoreError.notFound("sync \(syncID)") }
            let status = SyncStatus(rawValue: try row.string("status")) ?? .failed
            var writes: [StoreWrite] = []
            var events: [StoreEvent] = []
            switch status {
            case .cancelled:
                break
            case .completed, .failed:
                throw SyncStoreError.invalidState(current: status, message: "A \(status.rawValue) sync cannot be cancelled.")
            case .queued, .retrying:
                try StoreRules.checked(from: status, to: .cancelled)
                writes.append(StoreWrite("""
                    UPDATE syncs SET status = \(SyncStatus.cancelled), finished_at = \(t), cancel_requested = \(true),
                        next_retry_at = NULL
                    WHERE id = \(syncID) AND status = \(status)
                    """))
            case .running:
                if !(try row.bool("cancel_requested")) {
                    writes.append(StoreWrite(
                        "UPDATE syncs SET cancel_requested = \(true) WHERE id = \(syncID) AND status = \(SyncStatus.running)"))
                }
                events.append(.cancelRequested(syncID: syncID))
            }
            let changed = !writes.isEmpty
            return StoreDecision(writes: writes, events: events, then: SyncRows.sync(id: syncID)) { _, then in
                (try SyncRows.written(then, id: syncID), changed)
            }
        })
    }

    /// ``cancel(syncID:now:)`` for a batch, in one transaction: the rows are locked in id
    /// order (two batches racing over the same syncs wait for each other rather than
    /// deadlock), the queued and retrying ones are ended by one statement and the running
    /// ones flagged by another, so of calls racing for one sync exactly one changes it.
    public func cancel(syncIDs: [String], now: Date) async throws -> [CancelledSync] {
        guard !syncIDs.isEmpty else { return [] }
        let t = now.timeIntervalSince1970
        return try await driver.transact(StoreTransaction(facts: ["""
            SELECT id, source_id, status, cancel_requested, started_at,
                   (SELECT kind FROM sources WHERE sources.id = syncs.source_id) AS source_kind
            FROM syncs
            WHERE id \(in: syncIDs) ORDER BY id \(sql: .forUpdate)
            """]) { facts in
            var ending: [String] = []
            var flagging: [String] = []
            var changed: [CancelledSync] = []
            var events: [StoreEvent] = []
            for row in facts[0] {
                let id = try row.string("id")
                let status = SyncStatus(rawValue: try row.string("status")) ?? .failed
                let sourceID = try row.string("source_id")
                switch status {
                case .queued, .retrying:
                    try StoreRules.checked(from: status, to: .cancelled)
                    ending.append(id)
                    changed.append(CancelledSync(id: id, sourceID: sourceID, sourceKind: try row.optionalString("source_kind"),
                                                 ended: true, startedAt: RowCoding.date(try row.optionalDouble("started_at"))))
                case .running:
                    if !(try row.bool("cancel_requested")) {
                        flagging.append(id)
                        changed.append(CancelledSync(id: id, sourceID: sourceID, sourceKind: try row.optionalString("source_kind"),
                                                     ended: false, startedAt: nil))
                    }
                    events.append(.cancelRequested(syncID: id))
                case .cancelled, .completed, .failed:
                    break
                }
            }
            var writes: [StoreWrite] = []
            if !ending.isEmpty {
                writes.append(StoreWrite("""
                    UPDATE syncs SET status = \(SyncStatus.cancelled), finished_at = \(t), cancel_requested = \(true),
                        next_retry_at = NULL
                    WHERE id \(in: ending) AND status \(in: [SyncStatus.queued, .retrying])
                    """))
            }
            if !flagging.isEmpty {
                writes.append(StoreWrite(
                    "UPDATE syncs SET cancel_requested = \(true) WHERE id \(in: flagging) AND status = \(SyncStatus.running)"))
            }
            let answer = changed
            return StoreDecision(writes: writes, events: events) { _, _ in answer }
        })
    }

    /// A failed or cancelled sync goes back to the queue with a fresh attempt budget (the
    /// source's current `retry.max_attempts`), if its source has no other active sync.
    public func retry(syncID: String, now: Date) async throws -> Sync {
        let sourceOfSync: StoreSQL = "SELECT source_id FROM syncs WHERE id = \(syncID)"
        return try await driver.transact(StoreTransaction(facts: [
            "SELECT * FROM sources WHERE id = (\(sql: sourceOfSync)) \(sql: .forUpdate)",
            "SELECT status FROM syncs WHERE id = \(syncID) \(sql: .forUpdate)",
            "SELECT id, status FROM syncs WHERE source_id = (\(sql: sourceOfSync)) AND status \(in: SyncStatus.active)",
            // A reset of the source since the sync's last page: its checkpoint no longer
            // matches the source (the records it read are deleted, or the cursor cleared).
            """
            SELECT 1 AS reset FROM source_resets
            WHERE source_id = (\(sql: sourceOfSync)) AND at >= (SELECT checkpoint_at FROM syncs WHERE id = \(syncID)) LIMIT 1
            """,
        ]) { facts in
            guard let syncRow = facts.first(1), let sourceRow = facts.first(0) else { throw SyncStoreError.notFound("sync \(syncID)") }
            let status = SyncStatus(rawValue: try syncRow.string("status")) ?? .failed
            guard SyncTransition.isAllowed(from: status, to: .queued), status.isTerminal else {
                throw SyncStoreError.invalidState(current: status, message: "Only failed or cancelled syncs can be retried.")
            }
            if let active = facts.first(2) { throw try SyncStatements.alreadyActive(active) }
            let source = try RowCoding.source(sourceRow)
            // After a reset the retry starts from the first page, counted from zero: resuming
            // would leave the records of the pages before the checkpoint deleted.
            let startsOver = facts.first(3) != nil
            let fresh: StoreSQL = startsOver ? """
                checkpoint = NULL, checkpoint_at = NULL, pages = 0, records_read = 0, records_created = 0, records_updated = 0,
                    records_unchanged = 0, records_deleted = 0, records_failed = 0, bytes_read = 0, change_from = NULL, change_to = NULL,
                """ : ""
            let requeue = StoreWrite("""
                UPDATE syncs SET \(sql: fresh) status = \(SyncStatus.queued), trigger = \(SyncTrigger.retry.rawValue), failed_attempts = 0,
                    cancel_requested = \(false), error = NULL, finished_at = NULL, next_retry_at = NULL,
                    run_at = \(now.timeIntervalSince1970), max_attempts = \(source.retry.maxAttempts), held = \(source.paused),
                    notify = \(!source.notify.isEmpty), concurrency_key = \(source.concurrency?.key),
                    concurrency_limit = \(source.concurrency?.limit), rate_key = \(source.rateKey)
                WHERE id = \(syncID) AND status = \(status)
                """, onUniqueViolation: .rerun)
            let forget = StoreWrite("DELETE FROM record_errors WHERE sync_id = \(syncID)")
            return StoreDecision(writes: startsOver ? [forget, requeue] : [requeue], events: [.wake], then: SyncRows.sync(id: syncID)) { _, then in
                try SyncRows.written(then, id: syncID)
            }
        })
    }
}

extension DatabaseStore: QueueMaintenance {
    /// Sources whose schedule is due and that have no active sync; on PostgreSQL, sources
    /// another node is queuing right now are skipped (it queues them).
    public func enqueueDueSchedules(now: Date) async throws -> [String] {
        let t = now.timeIntervalSince1970
        return try await driver.transact(StoreTransaction(facts: ["""
            SELECT * FROM sources
            WHERE schedule_every_seconds IS NOT NULL AND NOT paused
              AND (last_queued_at IS NULL OR last_queued_at + schedule_every_seconds <= \(t))
              AND NOT EXISTS (SELECT 1 FROM syncs WHERE syncs.source_id = sources.id
                              AND syncs.status \(in: SyncStatus.active))
            \(sql: .forUpdateSkipLocked)
            """]) { facts in
            var writes: [StoreWrite] = []
            var ids: [String] = []
            for row in facts[0] {
                let source = try RowCoding.source(row)
                let id = Identifier.make("syn", now: now)
                ids.append(id)
                writes += SyncStatements.insertSync(
                    id: id, source: source, mode: source.defaultMode, priority: source.priority, trigger: .schedule, at: t)
            }
            return StoreDecision(writes: writes, events: ids.isEmpty ? [] : [.wake]) { [ids] _, _ in ids }
        })
    }

    /// A running sync whose lease expired goes back to the queue (its worker stopped
    /// heartbeating: crashed, cut off, or frozen), or to `cancelled` if a cancel was
    /// requested. Its attempt is closed with ``StoreRules/leaseExpired``. On PostgreSQL,
    /// rows a worker is still writing are skipped: its commit proves it alive.
    public func rescueExpiredLeases(now: Date) async throws -> [String] {
        let t = now.timeIntervalSince1970
        let running = SyncStatus.running
        return try await driver.transact(StoreTransaction(facts: ["""
            SELECT id, attempt, cancel_requested FROM syncs WHERE status = \(running) AND lease_expires_at < \(t)
            \(sql: .forUpdateSkipLocked)
            """]) { facts in
            var writes: [StoreWrite] = []
            var ids: [String] = []
            var events: [StoreEvent] = []
            for row in facts[0] {
                let id = try row.string("id")
                let to: SyncStatus = try row.bool("cancel_requested") ? .cancelled : .queued
                try StoreRules.checked(from: .running, to: to)
                ids.append(id)
                if to == .queued { events = [.wake] }
                writes.append(StoreWrite("""
                    UPDATE syncs SET status = \(to), finished_at = \(to == .cancelled ? t : nil), run_at = \(t),
                        \(raw: AttemptEnd.leaseCleared)
                    WHERE id = \(id) AND status = \(running)
                    """))
                writes.append(StoreWrite("""
                    UPDATE sync_attempts SET finished_at = \(t), status = \(to.rawValue), error = \(RowCoding.json(StoreRules.leaseExpired))
                    WHERE sync_id = \(id) AND number = \(try row.int("attempt"))
                    """))
            }
            return StoreDecision(writes: writes, events: events) { [ids] _, _ in ids }
        })
    }
}
