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
              let row = try fetch(db, text: """
                SELECT id, status FROM syncs
                WHERE status IN (\(SchemaVocabulary.runnable)) AND NOT held AND run_at <= ?
                  AND \(StoreRules.concurrencyAllows)
                ORDER BY \(StoreRules.claimOrder) LIMIT 1
                """, values: [.double(t)]).first else { return nil }
        let id = try row.string("id")
        try StoreRules.checked(from: SyncStatus(rawValue: try row.string("status")) ?? .queued, to: .running)
        let token = UUID().uuidString
        try db.cachedStatement(sql: Statements.start).execute(arguments: [owner, token, t + leaseSeconds, t, id])
        let attempt = try fetch(db, text: "SELECT attempt FROM syncs WHERE id = ?", values: [.text(id)]).first?.int("attempt") ?? 1
        try db.cachedStatement(sql: "INSERT INTO sync_attempts \(AttemptStart.attemptColumns) VALUES (?, ?, ?, 'running', ?)")
            .execute(arguments: [id, attempt, t, owner])
        guard let sync = try sync(db, id: id),
              let sourceRow = try fetch(db, text: "SELECT * FROM sources WHERE id = ?", values: [.text(sync.sourceID)]).first
        else { return nil }
        return ClaimedSync(sync: sync, source: try RowCoding.source(sourceRow), lease: Lease(syncID: id, owner: owner, token: token, attempt: attempt))
    }

    static func sync(_ db: Database, id: String) throws -> Sync? {
        try SyncRows.sync(Rows(sets: try SyncRows.sync(id: id).map { try fetch(db, $0) }), at: 0)
    }

    func commitPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress {
        try await guarded {
            try await pool.write { db in try Self.commitPage(db, page, lease: lease, now: now.timeIntervalSince1970) }
        }
    }

    private static func commitPage(_ db: Database, _ page: PageCommit, lease: Lease, now t: Double) throws -> SyncProgress {
        // Fence first: inside this IMMEDIATE transaction nobody else can take the lease.
        guard let row = try fetch(db, text: Statements.fence, values: [.text(lease.syncID), .text(lease.token)]).first else {
            throw SyncStoreError.leaseLost
        }
        let fence = try PageWrite.Fence(row, pageNumber: page.pageNumber)
        switch fence.order {
        case .alreadyCommitted:
            guard let sync = try sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
            return sync.progress
        case .behind(let error):
            throw error
        case .next:
            break
        }
        let counts = try SQLiteRecordWriter.upsert(page.records, sourceSeq: fence.sourceSeq, syncSeq: fence.syncSeq, now: t, db: db)
        if fence.fullMode {
            try SQLiteRecordWriter.markSeen(page.recordErrorKeys, sourceSeq: fence.sourceSeq, syncSeq: fence.syncSeq, db: db)
        }
        for error in page.recordErrors { _ = try fetch(db, PageWrite.recordError(error, syncID: lease.syncID)) }
        try db.cachedStatement(sql: Statements.progress).execute(arguments: [
                counts.created, counts.updated, counts.unchanged, page.recordErrors.count, page.bytesRead,
                page.checkpoint.map(RowCoding.json), t, lease.syncID,
            ])
        if let state = page.sourceState, !state.isEmpty {
            // Keys replace keys (PostgreSQL: `state || new`).
            let current = try fetch(db, text: "SELECT state FROM sources WHERE id = ?", values: [.text(fence.sourceID)]).first?.string("state")
            var merged = try RowCoding.decode(JSONObject.self, current, column: "state") ?? [:]
            merged.merge(state) { _, new in new }
            try db.execute(sql: "UPDATE sources SET state = ? WHERE id = ?", arguments: [RowCoding.json(merged), fence.sourceID])
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
                return try Self.finish(db, lease, AttemptEnd(outcome: .completed, now: t), now: t)
            }
        }
    }

    func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync {
        let end = AttemptEnd(outcome: outcome, now: now.timeIntervalSince1970)
        let sync = try await guarded {
            try await pool.write { db in try Self.finish(db, lease, end, now: now.timeIntervalSince1970) }
        }
        if end.wakes { events.publish([.wake]) }
        return sync
    }

    private static func finish(_ db: Database, _ lease: Lease, _ end: AttemptEnd, now t: Double) throws -> Sync {
        guard let row = try fetch(db, text: "SELECT seq, mode, source_id FROM syncs WHERE id = ? AND lease_token = ? AND status = 'running'",
                                  values: [.text(lease.syncID), .text(lease.token)]).first else { throw SyncStoreError.leaseLost }
        var deleted = 0
        if end.deletesUnseen {
            try db.cachedStatement(sql: Statements.deleteUnseen).execute(arguments: [t, Int64(try row.int("seq")), try row.string("source_id"), try row.string("mode")])
            deleted = db.changesCount
        }
        try db.cachedStatement(sql: Statements.end).execute(arguments: [
                end.status.rawValue, end.finishedAt, end.nextRetryAt, end.runAt, end.error.map(RowCoding.json),
                end.failedDelta, deleted, t, lease.syncID, lease.token,
            ])
        try db.cachedStatement(sql: Statements.endAttempt).execute(arguments: [t, end.status.rawValue, end.attemptError.map(RowCoding.json), lease.syncID, lease.attempt])
        guard let sync = try sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
        return sync
    }

    /// The page and end statements' texts, built once from the shared pieces (``PageWrite``,
    /// ``PageProgress``, ``AttemptEnd``): building them on every page cost the SQLite ingest
    /// a few per cent.
    enum Statements {
        static let start = """
            UPDATE syncs SET \(AttemptStart.syncColumns(owner: "?1", token: "?2", expiresAt: "?3", now: "?4")) WHERE id = ?5
            """
        static let fence = PageWrite.fence(Lease(syncID: "", owner: "", token: "", attempt: 0)).render(.sqlite).text
        static let progress = """
            UPDATE syncs SET \(PageProgress.syncColumns(
                created: "?1", updated: "?2", unchanged: "?3", recordErrors: "?4", bytesRead: "?5", checkpoint: "?6", now: "?7"))
            WHERE id = ?8
            """
        static let deleteUnseen = """
            UPDATE records SET \(AttemptEnd.markedDeleted(now: "?1", syncSeq: "?2"))
            WHERE \(AttemptEnd.unseenRecords(mode: "?4", sourceSeq: "(SELECT seq FROM sources WHERE id = ?3)", syncSeq: "?2"))
            """
        static let end = """
            UPDATE syncs SET \(AttemptEnd.syncColumns(
                .sqlite, status: "?1", finishedAt: "?2", nextRetryAt: "?3", runAt: "?4", error: "?5", failedDelta: "?6",
                deleted: "?7", now: "?8", runningSince: "running_since"))
            WHERE id = ?9 AND lease_token = ?10
            """
        static let endAttempt = """
            UPDATE sync_attempts SET \(AttemptEnd.attemptColumns(now: "?1", status: "?2", error: "?3")) WHERE sync_id = ?4 AND number = ?5
            """
    }
}
