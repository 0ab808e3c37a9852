import Foundation
import SyncCore

/// Statements more than one rule writes or reads with: a new sync, the active-sync check,
/// the source views.
enum SyncStatements {
    /// The source's active sync (`id`, `status`), if it has one.
    static func activeSync(sourceID: String) -> StoreSQL {
        "SELECT id, status FROM syncs WHERE source_id = \(sourceID) AND status \(in: SyncStatus.active)"
    }

    /// `syncAlreadyActive` for an active-sync row of ``activeSync(sourceID:)``.
    static func alreadyActive(_ row: some StoreRow) throws -> SyncStoreError {
        .syncAlreadyActive(activeSyncID: try row.string("id"), status: SyncStatus(rawValue: try row.string("status")) ?? .queued)
    }

    /// A new queued sync of `source`. The partial unique index, not the check before it,
    /// refuses a second active sync: the write says to run the transaction again, whose
    /// facts then name the sync that got in first.
    static func insertSync(id: String, source: Source, mode: SyncMode, priority: Int, trigger: SyncTrigger, at t: Double,
                           runAt: Double? = nil) -> [StoreWrite] {
        [
            StoreWrite("""
                INSERT INTO syncs (id, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at, held, notify, concurrency_key, concurrency_limit, rate_key\(sqlite: ", seq", postgres: ""))
                VALUES (\(id), \(source.id), \(SyncStatus.queued.rawValue), \(mode.rawValue), \(priority), \(trigger.rawValue),
                    \(source.retry.maxAttempts), \(t), \(runAt ?? t), \(source.paused), \(!source.notify.isEmpty),
                    \(source.concurrency?.key), \(source.concurrency?.limit), \(source.rateKey)\(sqlite: ", (SELECT COALESCE(MAX(seq), 0) + 1 FROM syncs)", postgres: ""))
                """, onUniqueViolation: .rerun),
            StoreWrite("UPDATE sources SET last_queued_at = \(t) WHERE id = \(source.id)"),
        ]
    }

    /// Sources with their summaries in one statement (read with ``RowCoding/sourceView(_:)``):
    /// `filter` picks and orders the sources (`WHERE … ORDER BY … LIMIT …`); each one's latest
    /// and latest finished syncs are found by index first, then joined by primary key; its last
    /// success and its closed request budget are a subquery each. A page of sources costs this
    /// one statement whatever its size, and each part reads an index from its head, whatever
    /// the length of a source's history.
    static func sourceViews(_ filter: StoreSQL, now: Date) -> StoreSQL {
        let terminal = SchemaVocabulary.isTerminal
        return """
            SELECT s.*, \(raw: briefColumns),
                (SELECT c.finished_at FROM syncs c WHERE c.source_id = s.id AND c.\(raw: terminal)
                    AND c.status = \(SyncStatus.completed) ORDER BY c.finished_at DESC LIMIT 1) AS last_completed_at,
                (SELECT r.closed_until FROM rate_limits r WHERE r.key = s.rate_key AND r.closed_until > \(now.timeIntervalSince1970)) AS rate_limited_until,
                (SELECT cr.status FROM credentials cr WHERE cr.id = s.credential_id) AS credential_status
            FROM (SELECT sources.*,
                    (SELECT x.id FROM syncs x WHERE x.source_id = sources.id ORDER BY x.id DESC LIMIT 1) AS latest_sync_id,
                    (SELECT x.id FROM syncs x WHERE x.source_id = sources.id AND x.\(raw: terminal)
                        ORDER BY x.finished_at DESC LIMIT 1) AS finished_sync_id
                  FROM sources \(sql: filter)) s
            \(sql: briefJoin("l", on: "latest_sync_id"))
            \(sql: briefJoin("f", on: "finished_sync_id"))
            ORDER BY s.id
            """
    }

    /// The columns of the two syncs a summary names, `l_id`, `f_status`, …: spelled once, not
    /// on every read of a source.
    private static let briefColumns = ["l", "f"].map { alias in
        ["id", "status", "mode", "queued_at", "started_at", "finished_at", "records_read"]
            .map { "\(alias).\($0) AS \(alias)_\($0)" }.joined(separator: ", ")
    }.joined(separator: ", ")

    /// A summary's sync joined by primary key. PostgreSQL's cached generic plan guesses 200
    /// rows for `LIMIT $n` and hash-joined a sequential scan of every sync (7 ms for a page
    /// of 50 among 6,000 syncs, growing with the history); a lateral subquery with its own
    /// `LIMIT` is not pulled up, so each row is one primary-key probe (0.7 ms).
    private static func briefJoin(_ alias: String, on column: String) -> StoreSQL {
        """
        \(sqlite: "LEFT JOIN syncs \(alias) ON \(alias).id = s.\(column)",
           postgres: "LEFT JOIN LATERAL (SELECT * FROM syncs WHERE syncs.id = s.\(column) LIMIT 1) \(alias) ON true")
        """
    }

    /// `SELECT *` of the records, with the id of the sync that last wrote each.
}
