import Foundation
import GRDB
import SyncCore

/// The workers' hot paths on SQLite: each one `BEGIN IMMEDIATE` transaction of cached
/// statements (a local write costs microseconds; no round trips to save).
extension SQLiteDriver {
    func claimBatch(owner: String, leaseSeconds: Double, now: Date, limit: Int) async throws -> [ClaimedSync] {
        let t = now.timeIntervalSince1970
        return try await guarded {
            try await pool.write { db in
                var claimed: [ClaimedSync] = []
                while claimed.count < limit, let next = try Self.claimNext(db, owner: owner, leaseSeconds: leaseSeconds, now: t) {
                    claimed.append(next)
                }
                return claimed
            }
        }
    }

    private static func claimNext(_ db: Database, owner: String, leaseSeconds: Double, now t: Double) throws -> ClaimedSync? {
        // First whether anything is due at all (SQLite would check that condition on every
        // row of the walk below, not once before it).
        guard try Bool.fetchOne(db.cachedStatement(sql: "SELECT \(StoreRules.someDue(at: "?"))"), arguments: [t]) == true,
              let row = try Row.fetchOne(
            db.cachedStatement(sql: """
                SELECT id, status FROM syncs
                WHERE status IN (\(SchemaVocabulary.runnable)) AND NOT held AND run_at <= ?
                  AND \(StoreRules.concurrencyAllows)
                ORDER BY \(StoreRules.claimOrder) LIMIT 1
                """),
            arguments: [t]) else { return nil }
        let id: String = row["id"]
        try StoreRules.checked(from: SyncStatus(rawValue: row["status"]) ?? .queued, to: .running)
        let token = UUID().uuidString
        try db.cachedStatement(sql: """
            UPDATE syncs SET status = 'running', attempt = attempt + 1, lease_owner = ?, lease_token = ?,
                lease_expires_at = ?, heartbeat_at = ?, started_at = COALESCE(started_at, ?), running_since = ?,
                next_retry_at = NULL
            WHERE id = ?
            """).execute(arguments: [owner, token, t + leaseSeconds, t, t, t, id])
        let attempt = try Int.fetchOne(db.cachedStatement(sql: "SELECT attempt FROM syncs WHERE id = ?"), arguments: [id]) ?? 1
        try db.cachedStatement(sql: "INSERT INTO sync_attempts (sync_id, number, started_at, status, node) VALUES (?, ?, ?, 'running', ?)")
            .execute(arguments: [id, attempt, t, owner])
        guard let sync = try sync(db, id: id),
              let sourceRow = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM sources WHERE id = ?"), arguments: [sync.sourceID])
        else { return nil }
        return ClaimedSync(sync: sync, source: try RowCoding.source(sourceRow), lease: Lease(syncID: id, owner: owner, token: token, attempt: attempt))
    }

    static func sync(_ db: Database, id: String) throws -> Sync? {
        try SyncStatements.sync(Rows(sets: try SyncStatements.sync(id: id).map { try fetch(db, $0) }), at: 0)
    }

    func commitPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress {
        try await guarded {
            try await pool.write { db in try Self.commitPage(db, page, lease: lease, now: now.timeIntervalSince1970) }
        }
    }

    private static func commitPage(_ db: Database, _ page: PageCommit, lease: Lease, now t: Double) throws -> SyncProgress {
        // Fence first: inside this IMMEDIATE transaction nobody else can take the lease.
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: """
                SELECT syncs.source_id, syncs.mode, syncs.seq AS sync_seq, sources.seq AS source_seq, syncs.pages
                FROM syncs JOIN sources ON sources.id = syncs.source_id
                WHERE syncs.id = ? AND syncs.lease_token = ? AND syncs.status = 'running'
                """),
            arguments: [lease.syncID, lease.token]) else { throw SyncStoreError.leaseLost }
        switch StoreRules.order(of: page.pageNumber, storedPages: row["pages"]) {
        case .alreadyCommitted:
            guard let sync = try sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
            return sync.progress
        case .behind(let error):
            throw error
        case .next:
            break
        }
        let sourceID: String = row["source_id"]
        let fullMode = (row["mode"] as String) == SyncMode.full.rawValue
        let counts = try SQLiteRecordWriter.upsert(page.records, sourceSeq: row["source_seq"], syncSeq: row["sync_seq"], now: t, db: db)
        if fullMode {
            try SQLiteRecordWriter.markSeen(page.recordErrorKeys, sourceSeq: row["source_seq"], syncSeq: row["sync_seq"], db: db)
        }
        for error in page.recordErrors {
            try db.cachedStatement(sql: "INSERT INTO record_errors (sync_id, page, record_key, message) VALUES (?, ?, ?, ?)")
                .execute(arguments: [lease.syncID, error.page, error.recordKey, error.message])
        }
        try db.cachedStatement(sql: """
            UPDATE syncs SET pages = pages + 1, records_read = records_read + ?, records_created = records_created + ?,
                records_updated = records_updated + ?, records_unchanged = records_unchanged + ?,
                records_failed = records_failed + ?, bytes_read = bytes_read + ?, checkpoint = ?, checkpoint_at = ?,
                heartbeat_at = ?
            WHERE id = ?
            """).execute(arguments: [
                counts.read + page.recordErrors.count, counts.created, counts.updated, counts.unchanged,
                page.recordErrors.count, page.bytesRead, page.checkpoint.map(RowCoding.json), t, t, lease.syncID,
            ])
        if let state = page.sourceState, !state.isEmpty {
            // Keys replace keys (PostgreSQL: `state || new`).
            let current = try String.fetchOne(db, sql: "SELECT state FROM sources WHERE id = ?", arguments: [sourceID])
            var merged = RowCoding.decode(JSONObject.self, current) ?? [:]
            merged.merge(state) { _, new in new }
            try db.execute(sql: "UPDATE sources SET state = ? WHERE id = ?", arguments: [RowCoding.json(merged), sourceID])
        }
        guard let sync = try sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
        return sync.progress
    }

    /// The last page, then the end of the attempt, in one transaction.
    func completeWithFinalPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> Sync {
        let t = now.timeIntervalSince1970
        return try await guarded {
            try await pool.write { db in
                _ = try Self.commitPage(db, page, lease: lease, now: t)
                return try Self.finish(db, lease, outcome: .completed, now: t)
            }
        }
    }

    func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync {
        let sync = try await guarded {
            try await pool.write { db in try Self.finish(db, lease, outcome: outcome, now: now.timeIntervalSince1970) }
        }
        // Handed back: runnable again at once.
        if outcome.status == .queued { events.publish([.wake]) }
        return sync
    }

    private static func finish(_ db: Database, _ lease: Lease, outcome: AttemptOutcome, now t: Double) throws -> Sync {
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT seq, mode, source_id, run_at, running_since FROM syncs WHERE id = ? AND lease_token = ? AND status = 'running'"),
            arguments: [lease.syncID, lease.token]) else { throw SyncStoreError.leaseLost }
        let ranFor = max(0, t - ((row["running_since"] as Double?) ?? t))
        var change = FinishChange(outcome: outcome, runAt: (row["run_at"] as Double?) ?? t, now: t)
        if case .completed = outcome, (row["mode"] as String) == SyncMode.full.rawValue {
            try db.cachedStatement(sql: """
                UPDATE records SET deleted_at = ?1, updated_at = ?1, sync_seq = ?2
                WHERE source_seq = (SELECT seq FROM sources WHERE id = ?3) AND deleted_at IS NULL AND seen_sync_seq < ?2
                """).execute(arguments: [t, row["seq"] as Int64, row["source_id"] as String])
            change.deleted = db.changesCount
        }
        try db.cachedStatement(sql: """
            UPDATE syncs SET status = ?, finished_at = ?, next_retry_at = ?, run_at = ?, error = ?,
                failed_attempts = failed_attempts + ?, records_deleted = records_deleted + ?,
                run_seconds = run_seconds + ?, running_since = NULL,
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
            WHERE id = ? AND lease_token = ?
            """).execute(arguments: [
                outcome.status.rawValue, change.finishedAt, change.nextRetryAt, change.runAt, change.error.map(RowCoding.json),
                change.failedDelta, change.deleted, ranFor, lease.syncID, lease.token,
            ])
        try db.cachedStatement(sql: "UPDATE sync_attempts SET finished_at = ?, status = ?, error = ? WHERE sync_id = ? AND number = ?")
            .execute(arguments: [t, outcome.status.rawValue, change.attemptError.map(RowCoding.json), lease.syncID, lease.attempt])
        guard let sync = try sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
        return sync
    }
}
