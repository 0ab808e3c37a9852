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
        let (progress, changed) = try await guarded {
            try await pool.write { db in try Self.commitPage(db, page, lease: lease, now: now.timeIntervalSince1970) }
        }
        if let changed { events.publish([.recordsChanged(sourceID: changed)]) }
        return progress
    }

    /// The page's progress, and its source's id when the page changed records (for the
    /// change feed's waiting readers).
    private static func commitPage(_ db: Database, _ page: PageCommit, lease: Lease, now t: Double) throws -> (SyncProgress, changed: String?) {
        // Fence first: inside this IMMEDIATE transaction nobody else can take the lease.
        guard let row = try fetch(db, text: Statements.fence, values: [.text(lease.syncID), .text(lease.token)]).first else {
            throw SyncStoreError.leaseLost
        }
        let fence = try PageWrite.Fence(row, pageNumber: page.pageNumber)
        switch fence.order {
        case .alreadyCommitted:
            guard let sync = try sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
            return (sync.progress, nil)
        case .behind(let error):
            throw error
        case .next:
            break
        }
        // The source's writers hold SQLite's write lock: numbers are given in commit order.
        let head = try Int64.fetchOne(db.cachedStatement(sql: Statements.head), arguments: [fence.sourceSeq]) ?? 0
        var counts = try SQLiteRecordWriter.upsert(page.records, sourceSeq: fence.sourceSeq, syncSeq: fence.syncSeq, head: head, now: t, db: db)
        if counts.changes > 0 {
            counts.range = SyncChanges(from: head, to: head + counts.changes)
            try db.cachedStatement(sql: Statements.advance).execute(arguments: [fence.sourceSeq, counts.changes])
        }
        if fence.fullMode {
            try SQLiteRecordWriter.markSeen(page.recordErrorKeys, sourceSeq: fence.sourceSeq, syncSeq: fence.syncSeq, db: db)
        }
        for error in page.recordErrors { _ = try fetch(db, PageWrite.recordError(error, syncID: lease.syncID)) }
        try db.cachedStatement(sql: Statements.progress).execute(arguments: [
                counts.created, counts.updated, counts.unchanged, page.recordErrors.count, page.bytesRead,
                page.checkpoint.map(RowCoding.json), t, lease.syncID, counts.range?.from, counts.range?.to,
            ])
        if let state = page.sourceState, !state.isEmpty {
            // Keys replace keys (PostgreSQL: `state || new`).
            let current = try fetch(db, text: "SELECT state FROM sources WHERE id = ?", values: [.text(fence.sourceID)]).first?.string("state")
            var merged = try RowCoding.decode(JSONObject.self, current, column: "state") ?? [:]
            merged.merge(state) { _, new in new }
            try db.execute(sql: "UPDATE sources SET state = ? WHERE id = ?", arguments: [RowCoding.json(merged), fence.sourceID])
        }
        guard let sync = try sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
        return (sync.progress, counts.changes > 0 ? fence.sourceID : nil)
    }

    /// The last page, then the end of the attempt, in one transaction.
    func completeWithFinalPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> Sync {
        let t = now.timeIntervalSince1970
        let (sync, changed) = try await guarded {
            try await pool.write { db in
                let (_, paged) = try Self.commitPage(db, page, lease: lease, now: t)
                let (sync, deleted) = try Self.finish(db, lease, AttemptEnd(outcome: .completed, now: t), now: t)
                return (sync, paged ?? deleted)
            }
        }
        if let changed { events.publish([.recordsChanged(sourceID: changed)]) }
        return sync
    }

    func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync {
        let end = AttemptEnd(outcome: outcome, now: now.timeIntervalSince1970)
        let (sync, changed) = try await guarded {
            try await pool.write { db in try Self.finish(db, lease, end, now: now.timeIntervalSince1970) }
        }
        if end.wakes { events.publish([.wake]) }
        if let changed { events.publish([.recordsChanged(sourceID: changed)]) }
        return sync
    }

    /// The ended sync, and its source's id when a full sync marked records deleted.
    private static func finish(_ db: Database, _ lease: Lease, _ end: AttemptEnd, now t: Double) throws -> (Sync, changed: String?) {
        guard let row = try fetch(db, text: "SELECT seq, mode, source_id FROM syncs WHERE id = ? AND lease_token = ? AND status = 'running'",
                                  values: [.text(lease.syncID), .text(lease.token)]).first else { throw SyncStoreError.leaseLost }
        var deleted = 0
        var range: SyncChanges?
        let sourceID = try row.string("source_id")
        if end.deletesUnseen {
            try db.cachedStatement(sql: Statements.deleteUnseen).execute(arguments: [t, Int64(try row.int("seq")), sourceID, try row.string("mode")])
            deleted = db.changesCount
            if deleted > 0 {
                let head = try Int64.fetchOne(db.cachedStatement(sql: Statements.headBySource), arguments: [sourceID]) ?? 0
                range = SyncChanges(from: head, to: head + Int64(deleted))
                try db.cachedStatement(sql: Statements.advanceBySource).execute(arguments: [sourceID, deleted])
            }
        }
        try db.cachedStatement(sql: Statements.end).execute(arguments: [
                end.status.rawValue, end.finishedAt, end.nextRetryAt, end.runAt, end.error.map(RowCoding.json),
                end.failedDelta, deleted, t, lease.syncID, lease.token, range?.from, range?.to,
            ])
        try db.cachedStatement(sql: Statements.endAttempt).execute(arguments: [t, end.status.rawValue, end.attemptError.map(RowCoding.json), lease.syncID, lease.attempt])
        guard let sync = try sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
        return (sync, deleted > 0 ? sourceID : nil)
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
                created: "?1", updated: "?2", unchanged: "?3", recordErrors: "?4", bytesRead: "?5", checkpoint: "?6", now: "?7")),
                \(SyncChangesSchema.syncColumns(from: "?9", to: "?10"))
            WHERE id = ?8
            """
        /// A completed full sync's unseen records, marked deleted and numbered after the head.
        static let deleteUnseen = ChangeFeed.markDeleted(
            sourceSeq: "(SELECT seq FROM sources WHERE id = ?3)",
            condition: AttemptEnd.unseenRecords(mode: "?4", sourceSeq: "(SELECT seq FROM sources WHERE id = ?3)", syncSeq: "?2"),
            base: "COALESCE((SELECT head FROM record_feeds WHERE source_seq = (SELECT seq FROM sources WHERE id = ?3)), 0)",
            now: "?1", extraSet: ", sync_seq = ?2")
        static let head = "SELECT head FROM record_feeds WHERE source_seq = ?"
        static let headBySource = "SELECT head FROM record_feeds WHERE source_seq = (SELECT seq FROM sources WHERE id = ?)"
        static let advance = ChangeFeed.advance(sourceSeq: "?1", count: "?2")
        static let advanceBySource = ChangeFeed.advance(sourceSeq: "(SELECT seq FROM sources WHERE id = ?1)", count: "?2")
        static let end = """
            UPDATE syncs SET \(AttemptEnd.syncColumns(
                .sqlite, status: "?1", finishedAt: "?2", nextRetryAt: "?3", runAt: "?4", error: "?5", failedDelta: "?6",
                deleted: "?7", now: "?8", runningSince: "running_since")),
                \(SyncChangesSchema.syncColumns(from: "?11", to: "?12"))
            WHERE id = ?9 AND lease_token = ?10
            """
        static let endAttempt = """
            UPDATE sync_attempts SET \(AttemptEnd.attemptColumns(now: "?1", status: "?2", error: "?3")) WHERE sync_id = ?4 AND number = ?5
            """
    }
}
