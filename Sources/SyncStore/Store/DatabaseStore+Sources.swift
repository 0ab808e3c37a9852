import Foundation
import SyncCore

extension DatabaseStore: SourceCatalog {
    public func createSource(_ source: Source) async throws -> Source {
        let shown = source
        let source = keyring.sealSecrets(of: source)
        let insert = StoreWrite("""
            INSERT INTO sources (id, name, kind, config, schedule_every_seconds, priority, retry, rate_limit,
                min_trigger_interval_seconds, state, created_at, updated_at, notify, concurrency, rate_key, schedule_cron, next_slot_at,
                credential_id\(sqlite: ", seq", postgres: ""))
            VALUES (\(source.id), \(source.name), \(source.kind), \(RowCoding.json(source.config)), \(source.schedule?.everySeconds),
                \(source.priority), \(RowCoding.json(source.retry)), \(source.rateLimit.map(RowCoding.json)),
                \(source.minTriggerIntervalSeconds), \(RowCoding.json(source.state)),
                \(source.createdAt.timeIntervalSince1970), \(source.updatedAt.timeIntervalSince1970), \(RowCoding.notify(source.notify)),
                \(source.concurrency.map(RowCoding.json)), \(source.rateKey),
                \(source.cron.map(RowCoding.json)), \(source.nextSlotAt?.timeIntervalSince1970), \(source.credential)\(
                    sqlite: ", (SELECT COALESCE(MAX(seq), 0) + 1 FROM sources)", postgres: ""))
            """, onUniqueViolation: .fail(.nameTaken(source.name)))
        return try await driver.transact(StoreTransaction { _ in
            StoreDecision(writes: [insert]) { _, _ in shown }
        })
    }

    public func source(idOrName: String) async throws -> Source? {
        let rows = try await driver.read(["SELECT * FROM sources \(sql: Self.idOrName(idOrName))"])
        return try rows.first(0).map { keyring.openSecretsLeniently(of: try RowCoding.source($0)).source }
    }

    public func requestBudget(sourceID: String) async throws -> (limit: RateLimit?, key: String)? {
        let rows = try await driver.read(["SELECT * FROM sources WHERE id = \(sourceID)"])
        return try rows.first(0).map { try RowCoding.source($0) }.map { ($0.rateLimit, $0.rateKey) }
    }

    public func sourceView(idOrName: String) async throws -> SourceView? {
        let rows = try await driver.read([SyncStatements.sourceViews(Self.idOrName(idOrName), now: Date())])
        return try rows.first(0).map { try opened(try RowCoding.sourceView($0)) }
    }

    public func sourceViews(limit: Int, after: String?, paused: Bool?) async throws -> [SourceView] {
        let filter: StoreSQL = paused.map { "AND paused = \($0)" } ?? ""
        let rows = try await driver.read([
            SyncStatements.sourceViews("WHERE id > \(after ?? "") \(sql: filter) ORDER BY id LIMIT \(limit)", now: Date()),
        ])
        return try rows[0].map { try opened(try RowCoding.sourceView($0)) }
    }

    private func opened(_ view: SourceView) throws -> SourceView {
        var view = view
        view.source = keyring.openSecretsLeniently(of: view.source).source
        return view
    }

    /// The source with this id, else the one with this name (an id wins over a name).
    private static func idOrName(_ key: String) -> StoreSQL {
        "WHERE id = \(key) OR name = \(key) ORDER BY (id = \(key)) DESC LIMIT 1"
    }

    public func summary(sourceID: String) async throws -> SourceSyncSummary {
        try await summaries(sourceIDs: [sourceID])[sourceID] ?? .none
    }

    /// One statement for any number of sources (``SyncStatements/sourceViews(_:now:)``).
    public func summaries(sourceIDs: [String]) async throws -> [String: SourceSyncSummary] {
        guard !sourceIDs.isEmpty else { return [:] }
        let rows = try await driver.read([SyncStatements.sourceViews("WHERE id \(in: sourceIDs)", now: Date())])
        var out: [String: SourceSyncSummary] = [:]
        for id in sourceIDs { out[id] = SourceSyncSummary.none }
        for row in rows[0] { out[try row.string("id")] = try RowCoding.summary(row) }
        return out
    }

    public func updateSource(_ source: Source, clearingState keys: [String]) async throws -> Source {
        let keyring = keyring
        let source = keyring.sealSecrets(of: source)
        let update = StoreWrite("""
            UPDATE sources SET name = \(source.name), kind = \(source.kind), config = \(RowCoding.json(source.config)),
                schedule_every_seconds = \(source.schedule?.everySeconds), priority = \(source.priority),
                retry = \(RowCoding.json(source.retry)), rate_limit = \(source.rateLimit.map(RowCoding.json)),
                min_trigger_interval_seconds = \(source.minTriggerIntervalSeconds), updated_at = \(source.updatedAt.timeIntervalSince1970),
                notify = \(RowCoding.notify(source.notify)), concurrency = \(source.concurrency.map(RowCoding.json)),
                rate_key = \(source.rateKey), credential_id = \(source.credential),
                next_slot_at = CASE WHEN schedule_cron \(sqlite: "IS", postgres: "IS NOT DISTINCT FROM") \(source.cron.map(RowCoding.json))
                    THEN next_slot_at ELSE \(source.nextSlotAt?.timeIntervalSince1970) END,
                schedule_cron = \(source.cron.map(RowCoding.json))
            WHERE id = \(source.id) RETURNING id
            """, requireRow: .notFound("source \(source.id)"), onUniqueViolation: .fail(.nameTaken(source.name)))
        // Its active syncs carry what the database checks on them: whether the outbox trigger
        // looks for webhooks at all, and the concurrency key the claims count.
        let flag = StoreWrite("""
            UPDATE syncs SET notify = \(!source.notify.isEmpty), concurrency_key = \(source.concurrency?.key),
                concurrency_limit = \(source.concurrency?.limit), rate_key = \(source.rateKey)
            WHERE source_id = \(source.id) AND status \(in: SyncStatus.active)
            """)
        // A sync handed back to wait for the old budget (queued, claimed before, to run later)
        // may run at once under the new definition: it asks the budget again when claimed.
        // Not one whose key an upstream closed: that closure still stands.
        let t = source.updatedAt.timeIntervalSince1970
        let unwait = StoreWrite("""
            UPDATE syncs SET run_at = \(t)
            WHERE source_id = \(source.id) AND status = \(SyncStatus.queued) AND attempt > 0 AND run_at > \(t)
              AND NOT EXISTS (SELECT 1 FROM rate_limits WHERE rate_limits.key = syncs.rate_key AND rate_limits.closed_until > \(t))
            """)
        // State the new definition makes meaningless (a cursor of another field) goes in the
        // same transaction, key by key, so a page committing meanwhile keeps its other keys.
        let clear = keys.map { key in
            StoreWrite("""
                UPDATE sources SET state = \(sqlite: "json_remove(state, '$.\"' || ", postgres: "(state::jsonb - ")\(key)\(
                    sqlite: " || '\"')", postgres: "::text)::text") WHERE id = \(source.id)
                """)
        }
        return try await driver.transact(StoreTransaction { _ in
            StoreDecision(writes: [update, flag, unwait] + clear, events: [.wake], then: ["SELECT * FROM sources WHERE id = \(source.id)"]) { _, then in
                guard let row = then.first(0) else { throw SyncStoreError.notFound("source \(source.id)") }
                return keyring.openSecretsLeniently(of: try RowCoding.source(row)).source
            }
        })
    }

    /// Pauses or resumes a source. Its active syncs are held out of (or put back into) the
    /// claim index in the same transaction, so the claim needs no look at the source; new
    /// and retried syncs take the source's flag as they are queued (under its row lock).
    /// Resuming wakes the workers (its queued sync may run now).
    public func setPaused(sourceID: String, paused: Bool, now: Date) async throws -> Source {
        let keyring = keyring
        return try await driver.transact(StoreTransaction { _ in
            StoreDecision(writes: [
                StoreWrite("""
                    UPDATE sources SET paused = \(paused), updated_at = \(now.timeIntervalSince1970) WHERE id = \(sourceID) RETURNING id
                    """, requireRow: .notFound("source \(sourceID)")),
                StoreWrite("UPDATE syncs SET held = \(paused) WHERE source_id = \(sourceID) AND status \(in: SyncStatus.active)"),
            ],
                events: paused ? [] : [.wake],
                then: ["SELECT * FROM sources WHERE id = \(sourceID)"]) { _, then in
                guard let row = then.first(0) else { throw SyncStoreError.notFound("source \(sourceID)") }
                return keyring.openSecretsLeniently(of: try RowCoding.source(row)).source
            }
        })
    }

    /// Clears a source's saved state and/or marks its live records deleted, and keeps the
    /// reset in the source's history. Refused while a sync is active: a running sync would
    /// write its cursor back, and a queued one was asked for with the old state in mind.
    public func resetSource(sourceID: String, state: Bool, records: Bool, trigger: SyncTrigger, now: Date) async throws -> SourceReset {
        try await driver.transact(StoreTransaction(facts: [
            "SELECT seq, state FROM sources WHERE id = \(sourceID) \(sql: .forUpdate)",
            SyncStatements.activeSync(sourceID: sourceID),
            // The row lock (and no active sync) keep the source's records still until the commit.
            "SELECT count(*) AS n FROM records WHERE source_seq = (SELECT seq FROM sources WHERE id = \(sourceID)) AND deleted_at IS NULL",
            "SELECT head FROM record_feeds WHERE source_seq = (SELECT seq FROM sources WHERE id = \(sourceID)) \(sql: .forUpdate)",
        ]) { facts in
            guard let row = facts.first(0) else { throw SyncStoreError.notFound("source \(sourceID)") }
            if let active = facts.first(1) { throw SyncStoreError.sourceInUse(activeSyncID: try active.string("id")) }
            let seq = try row.int("seq")
            let deleted = records ? try facts.first(2)?.int("n") ?? 0 : 0
            let before = try RowCoding.decode(JSONObject.self, try row.string("state"), column: "state") ?? [:]
            let t = now.timeIntervalSince1970
            let id = Identifier.make("rst", now: now)
            var writes: [StoreWrite] = []
            if state { writes.append(StoreWrite("UPDATE sources SET state = '{}', updated_at = \(t) WHERE id = \(sourceID)")) }
            if records {
                // The change feed: the records go as changes numbered after one number left
                // unused, which becomes the floor: every cursor issued before is below it
                // (expired), every one after at or above it. No sync has seen them since
                // (`seen_sync_seq = 0`): the next one to read a record brings it back, even the
                // sync that read it before the reset.
                let floor = Int64(try facts.first(3)?.int("head") ?? 0) + 1
                writes.append(StoreWrite("""
                    UPDATE records SET deleted_at = \(t), updated_at = \(t), change_seq = \(floor) + gone.n, sync_seq = 0, seen_sync_seq = 0
                    FROM (SELECT key, row_number() OVER (ORDER BY key) AS n FROM records WHERE source_seq = \(seq) AND deleted_at IS NULL) AS gone
                    WHERE records.source_seq = \(seq) AND records.key = gone.key
                    """))
                writes.append(StoreWrite("""
                    INSERT INTO record_feeds (source_seq, head, floor) VALUES (\(seq), \(floor + Int64(deleted)), \(floor))
                    ON CONFLICT (source_seq) DO UPDATE SET head = excluded.head, floor = excluded.floor
                    """))
            }
            writes.append(StoreWrite("""
                INSERT INTO source_resets (id, source_id, at, state, records, state_before, records_deleted, trigger)
                VALUES (\(id), \(sourceID), \(t), \(state), \(records), \(RowCoding.json(before)), \(deleted), \(trigger))
                """))
            return StoreDecision(writes: writes, events: records ? [.recordsChanged(sourceID: sourceID)] : []) { _, _ in
                SourceReset(id: id, sourceID: sourceID, at: now, state: state, records: records, stateBefore: before,
                                   recordsDeleted: deleted, trigger: trigger)
            }
        })
    }

    /// A source's resets, newest first.
    public func resets(sourceID: String, limit: Int, before: String?) async throws -> [SourceReset] {
        let filter: StoreSQL = before.map { "AND id < \($0)" } ?? ""
        let rows = try await driver.read([
            "SELECT * FROM source_resets WHERE source_id = \(sourceID) \(sql: filter) ORDER BY id DESC LIMIT \(limit)",
        ])
        return try rows[0].map { try RowCoding.reset($0) }
    }

    /// A source with an active sync stays (the sync would lose its source mid-run).
    public func deleteSource(id: String) async throws {
        try await driver.transact(StoreTransaction(facts: [
            "SELECT seq FROM sources WHERE id = \(id) \(sql: .forUpdate)",
            SyncStatements.activeSync(sourceID: id),
        ]) { facts in
            guard let seq = try facts.first(0)?.int("seq") else { throw SyncStoreError.notFound("source \(id)") }
            if let active = facts.first(1) { throw SyncStoreError.sourceInUse(activeSyncID: try active.string("id")) }
            return StoreDecision(writes: [
                StoreWrite("DELETE FROM records WHERE source_seq = \(seq)"),
                StoreWrite("DELETE FROM record_feeds WHERE source_seq = \(seq)"),
                StoreWrite("DELETE FROM sources WHERE id = \(id)"),
            ]) { _, _ in () }
        })
    }
}
