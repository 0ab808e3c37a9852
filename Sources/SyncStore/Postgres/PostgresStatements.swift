import Logging
import NIOCore
import PostgresNIO

/// The statements of the hot path (claim, page, finish) as named prepared statements.
///
/// Measured on the queue benchmark: planning these CTE statements cost more than running
/// them (1.8 ms of planning against 1.0 ms of execution for a one-record page), because an
/// unnamed statement is planned on every call. Prepared once per connection, PostgreSQL
/// plans them a few times and then reuses a generic plan. Parameters carry explicit casts:
/// the binary values must match the types the server settles on at PREPARE time.
enum PostgresStatements {
    /// The LISTEN/NOTIFY channel of ``StoreEvent``s (payload `wake` or `cancel:<sync id>`).
    static let channel = "tributary_events"

    static let sourceColumns = [
        "id", "name", "kind", "config", "schedule_every_seconds", "priority", "retry", "rate_limit",
        "min_trigger_interval_seconds", "state", "created_at", "updated_at", "paused", "notify", "concurrency", "schedule_cron", "next_slot_at", "skipped_slots",
        "credential_id",
    ]
    /// `src.id AS src_id, …`: the claimed sync's source, read back through ``PrefixedRow``.
    static let prefixedSourceColumns = sourceColumns.map { "src.\($0) AS src_\($0)" }.joined(separator: ", ")

    /// Claim up to `limit` of the most urgent runnable syncs nobody else is claiming, lease each
    /// (a fresh random token per sync), open their attempts, and return them with their sources
    /// (columns `src_*`).
    ///
    /// Written for its generic plan: with `LIMIT $3` PostgreSQL expects 200 rows and, on a
    /// queue of a few thousand, joined them by hashing the whole `syncs` and `sources` tables
    /// (9.4 ms for 16 syncs on 6,000). `id = ANY(ARRAY(…))` and a `LATERAL` source lookup keep
    /// it on the primary keys (1.6 ms), whichever plan the server settles on.
    struct Claim: PostgresPreparedStatement {
        static let name = "tributary_claim_v10"
        static let sql = """
            WITH next AS (
                SELECT id FROM syncs
                WHERE status IN (\(SchemaVocabulary.runnable)) AND NOT held AND run_at <= $1::float8
                  AND \(StoreRules.concurrencyAllows)
                ORDER BY \(StoreRules.claimOrder)
                LIMIT $3::int8 FOR UPDATE SKIP LOCKED
            ), claimed AS (
                UPDATE syncs SET \(AttemptStart.syncColumns(
                    owner: "$2::text", token: "gen_random_uuid()::text", expiresAt: "$4::float8", now: "$1::float8"))
                WHERE syncs.id = ANY(ARRAY(SELECT id FROM next))
                RETURNING syncs.*
            ), opened AS (
                INSERT INTO sync_attempts \(AttemptStart.attemptColumns)
                SELECT id, attempt, $1::float8, 'running', $2::text FROM claimed
            )
            SELECT claimed.*, \(prefixedSourceColumns)
            FROM claimed CROSS JOIN LATERAL (SELECT * FROM sources WHERE sources.id = claimed.source_id) AS src
            """
        var now: Double
        var owner: String
        var limit: Int
        var expiresAt: Double

        func makeBindings() throws -> PostgresBindings {
            var b = PostgresBindings(capacity: 4)
            b.append(now)
            b.append(owner)
            b.append(limit)
            b.append(expiresAt)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// The part of ``CommitPage`` and ``CompleteWithPage`` that writes the page: the fence
    /// (lease token and the page following the stored one), the page as rows, the source's
    /// change numbers, the upsert and the stamp on records the sync had already seen.
    /// Parameters $1–$7; `more` adds CTEs between the page and the head (the unseen records
    /// of a completion) and `extra` counts the numbers they take.
    ///
    /// A record counts once per sync (docs/sources.md, "Record keys"): `written` creates new
    /// records and updates those this sync has not seen yet (counted); `touched` stamps the
    /// unchanged ones as seen (counted as unchanged) and writes a later version of a record
    /// this sync already wrote on an earlier page (not counted again; it returns `repeat`,
    /// told by its `updated_at` becoming this page's time). The two never touch one row, and
    /// `touched` looks only for the keys `written` did not write (a page of new records, the
    /// common case, then costs no second probe of the primary key per record).
    ///
    /// Change numbers: `head` advances the source's feed row by the page's length (plus
    /// `extra`) under its row lock, held to the commit, so the source's numbers commit in
    /// order (never N+1 visible while N is still to come); a record written takes
    /// `base + its position`, so a page's unchanged records leave numbers unused.
    static func pageCTEs(more: String = "", extra: String = "0", newKeys: Bool = false) -> String {
        """
            WITH fence AS (
                SELECT syncs.id, syncs.seq AS sync_seq, sources.seq AS source_seq, syncs.mode, syncs.running_since, syncs.source_id
                FROM syncs JOIN sources ON sources.id = syncs.source_id
                WHERE syncs.id = $1::text AND syncs.lease_token = $2::text
                  AND syncs.pages = $3::int8
                FOR UPDATE OF syncs
            ), page AS (
                SELECT * FROM unnest($4::text[], $5::bytea[], $6::int8[]) WITH ORDINALITY AS p(key, data, hash, ord)
            ), \(more)span AS (
                SELECT cardinality($4::text[]) + \(extra) AS n
            ), \(headCTE(sourceSeq: "fence.source_seq", from: "fence, span"))
            ), \(newKeys
                ? insertCTEs(sourceSeq: "fence.source_seq", syncSeq: "fence.sync_seq", now: "$7::float8", from: "page, fence")
                : upsertCTEs(sourceSeq: "fence.source_seq", syncSeq: "fence.sync_seq", now: "$7::float8", from: "page, fence"))
        """
    }

    /// Advances the source's feed head by `span.n` and returns the new head as `top`.
    static func headCTE(sourceSeq: String, from: String) -> String {
        """
        head AS (
                INSERT INTO record_feeds AS f (source_seq, head) SELECT \(sourceSeq), span.n FROM \(from)
                ON CONFLICT (source_seq) DO UPDATE SET head = f.head + excluded.head
                RETURNING f.head AS top
        """
    }

    /// The first number of the page: the head before it advanced.
    static let base = "(SELECT head.top - span.n FROM head, span)"

    /// The sync's stretch of the feed after a page (and its completion): the head before and
    /// after it, when `changed` (a numbered page whose records were all unchanged took
    /// numbers but changed nothing).
    static func pageChanges(changed: String) -> String {
        SyncChangesSchema.syncColumns(from: "CASE WHEN \(changed) THEN \(base) END", to: "CASE WHEN \(changed) THEN (SELECT top FROM head) END")
    }

    /// The upsert of a page (`page`: key, data, hash, ord) as two CTEs, `written` and
    /// `touched`, over SQL expressions for the source's and the sync's seq and the time:
    /// written once for the one-statement paths (from the fence) and for ``UpsertPage``
    /// (from parameters). A record written takes the change number ``base`` + its position.
    /// `touched` stamps unchanged records as seen and writes a later version of a record this
    /// sync already read; `reclassified` counts those of the later versions whose record
    /// this sync had counted unchanged (their last writer, in the table as the statement
    /// found it, was another sync): they count as updated instead. It reads only the rows
    /// `touched` rewrote, so a page without repeats pays nothing for it.
    static func upsertCTEs(sourceSeq: String, syncSeq: String, now: String, from: String) -> String {
        """
        written AS (
                INSERT INTO records AS r (source_seq, key, data, hash, created_at, updated_at, sync_seq, seen_sync_seq, change_seq)
                SELECT \(sourceSeq), page.key, page.data, page.hash, \(now), \(now), \(syncSeq), \(syncSeq), \(base) + page.ord
                FROM \(from)
                ON CONFLICT (source_seq, key) DO UPDATE SET data = EXCLUDED.data, hash = EXCLUDED.hash,
                    updated_at = EXCLUDED.updated_at, sync_seq = EXCLUDED.sync_seq,
                    seen_sync_seq = GREATEST(r.seen_sync_seq, EXCLUDED.seen_sync_seq), deleted_at = NULL,
                    change_seq = EXCLUDED.change_seq
                WHERE r.seen_sync_seq <> EXCLUDED.seen_sync_seq AND (r.hash <> EXCLUDED.hash OR r.deleted_at IS NOT NULL)
                RETURNING r.key, (xmax = 0) AS inserted
            ), touched AS (
                UPDATE records SET seen_sync_seq = GREATEST(records.seen_sync_seq, \(syncSeq)),
                    data = CASE WHEN records.hash <> page.hash THEN page.data ELSE records.data END,
                    updated_at = CASE WHEN records.hash <> page.hash THEN \(now) ELSE records.updated_at END,
                    sync_seq = CASE WHEN records.hash <> page.hash THEN \(syncSeq) ELSE records.sync_seq END,
                    change_seq = CASE WHEN records.hash <> page.hash THEN \(base) + page.ord ELSE records.change_seq END,
                    hash = page.hash
                FROM \(from)
                WHERE page.key NOT IN (SELECT key FROM written)
                  AND records.source_seq = \(sourceSeq) AND records.key = page.key AND records.deleted_at IS NULL
                  AND ((records.hash = page.hash AND records.seen_sync_seq <> \(syncSeq))
                       OR (records.seen_sync_seq = \(syncSeq) AND records.hash <> page.hash))
                RETURNING records.key, (records.updated_at = \(now)) AS repeat
            ), reclassified AS (
                SELECT count(*) AS n FROM \(from.replacingOccurrences(of: "page", with: "touched")), records AS old
                WHERE touched.repeat AND old.source_seq = \(sourceSeq) AND old.key = touched.key AND old.sync_seq <> \(syncSeq)
        """
    }

    /// ``upsertCTEs(sourceSeq:syncSeq:now:from:)`` for a page whose keys are all new to the
    /// source: a plain insert, without `ON CONFLICT`'s check, speculative insertion and
    /// second WAL record per row (17 % of the statement's time in a first sync; see
    /// docs/benchmarks.md). A key that exists fails the whole statement with a unique
    /// violation (nothing is written) and the page goes through the upsert instead.
    static func insertCTEs(sourceSeq: String, syncSeq: String, now: String, from: String) -> String {
        """
        written AS (
                INSERT INTO records AS r (source_seq, key, data, hash, created_at, updated_at, sync_seq, seen_sync_seq, change_seq)
                SELECT \(sourceSeq), page.key, page.data, page.hash, \(now), \(now), \(syncSeq), \(syncSeq), \(base) + page.ord
                FROM \(from)
                RETURNING r.key, true AS inserted
            ), touched AS (
                SELECT ''::text AS key, false AS repeat WHERE false
            ), reclassified AS (
                SELECT 0::int8 AS n
        """
    }

    /// Tells every node's waiting feed readers that the page changed its source's records
    /// (only when it did: an unchanged page sends nothing). Referenced by the final
    /// statement, so it runs.
    static let notifiedCTE = """
        notified AS (
                SELECT pg_notify('\(channel)', 'changes:' || fence.source_id) FROM fence
                WHERE EXISTS (SELECT 1 FROM written) OR EXISTS (SELECT 1 FROM touched WHERE repeat)
        """

    /// The progress a page adds to its sync (after ``pageCounts``; parameters $7–$10). A
    /// record counts as read once per sync: a key this sync already wrote on an earlier page
    /// is in none of the counts, and `$8` adds the page's record errors.
    static let pageProgress = PageProgress.syncColumns(
        created: "counts.created", updated: "counts.updated", unchanged: "counts.unchanged", recordErrors: "$8::int8",
        bytesRead: "$9::int8", checkpoint: "$10::text", now: "$7::float8")

    /// The upsert alone, for the transactional page path (a page with record errors, source
    /// state or a repeated key): $1–$3 the page's arrays, $4 the source's seq, $5 the sync's, $6 the time.
    struct UpsertPage: PostgresPreparedStatement {
        static let name = "tributary_upsert_page_v6"
        static let sql = """
            WITH page AS (
                SELECT * FROM unnest($1::text[], $2::bytea[], $3::int8[]) WITH ORDINALITY AS p(key, data, hash, ord)
            ), span AS (
                SELECT cardinality($1::text[])::int8 AS n
            ), \(headCTE(sourceSeq: "$4::int8", from: "span"))
            ), \(upsertCTEs(sourceSeq: "$4::int8", syncSeq: "$5::int8", now: "$6::float8", from: "page"))
            \(pageCounts)
            )
            SELECT created, updated, unchanged, changed, (SELECT top FROM head) AS top FROM counts
            """
        var keys: [String]
        var data: [ByteBuffer]
        var hashes: [Int64]
        var sourceSeq: Int64
        var syncSeq: Int64
        var now: Double

        func makeBindings() throws -> PostgresBindings {
            var b = PostgresBindings(capacity: 6)
            b.append(keys)
            b.append(data)
            b.append(hashes)
            b.append(sourceSeq)
            b.append(syncSeq)
            b.append(now)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// The counters of a page from ``pageCTEs``.
    static let pageCounts = """
            ), counts AS (
                SELECT (SELECT count(*) FROM written WHERE inserted) AS created,
                       (SELECT count(*) FROM written WHERE NOT inserted) + (SELECT n FROM reclassified) AS updated,
                       (SELECT count(*) FROM touched WHERE NOT repeat) - (SELECT n FROM reclassified) AS unchanged,
                       (SELECT count(*) FROM written) + (SELECT count(*) FROM touched WHERE repeat) AS changed
        """

    /// A completing full sync's records it did not see (nor this page holds), numbered.
    static let unseenCTE = """
        unseen AS (
                SELECT records.key, row_number() OVER (ORDER BY records.key) AS n FROM records, fence
                WHERE \(AttemptEnd.unseenRecords(mode: "fence.mode", sourceSeq: "fence.source_seq", syncSeq: "fence.sync_seq"))
                  AND NOT (records.key = ANY($4::text[]))
            ),\u{20}
        """

    /// One page with distinct keys, no record errors and no source state (see `commitPageInOneStatement`).
    struct CommitPage: PostgresPreparedStatement {
        static let name = "tributary_commit_page_v8"
        static let sql = commitPageSQL(newKeys: false)

        /// The page's writes (``pageCTEs(more:extra:newKeys:)``), then its progress on the sync.
        static func commitPageSQL(newKeys: Bool) -> String {
            """
            \(pageCTEs(newKeys: newKeys))
            ), \(notifiedCTE)
            \(pageCounts)
            )
            UPDATE syncs SET \(pageProgress), \(pageChanges(changed: "counts.changed > 0"))
            FROM fence, counts WHERE syncs.id = fence.id AND (SELECT count(*) FROM notified) >= 0
            RETURNING syncs.*
            """
        }
        var syncID: String
        var token: String
        var storedPages: Int
        var keys: [String]
        var data: [ByteBuffer]
        var hashes: [Int64]
        var now: Double
        /// The page's record errors (read, and counted as read).
        var recordErrors: Int
        var bytesRead: Int
        var checkpoint: String?

        func makeBindings() throws -> PostgresBindings {
            var b = PostgresBindings(capacity: 10)
            b.append(syncID)
            b.append(token)
            b.append(storedPages)
            b.append(keys)
            b.append(data)
            b.append(hashes)
            b.append(now)
            b.append(recordErrors)
            b.append(bytesRead)
            b.append(checkpoint)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// ``CommitPage`` for a page whose keys are all new to the source (a first sync's pages):
    /// see ``insertCTEs(sourceSeq:syncSeq:now:from:)``.
    struct CommitNewPage: PostgresPreparedStatement {
        static let name = "tributary_commit_new_page_v3"
        static let sql = CommitPage.commitPageSQL(newKeys: true)
        var page: CommitPage

        func makeBindings() throws -> PostgresBindings { try page.makeBindings() }
        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// The last page of a sync and its completion in one statement: ``CommitPage`` followed by
    /// ``Finish`` with `.completed`. A full sync's unseen records are those not in this page
    /// and not stamped by an earlier one (the page's own rows are left to the upsert: no row
    /// is touched twice by one statement).
    struct CompleteWithPage: PostgresPreparedStatement {
        static let name = "tributary_complete_with_page_v9"
        static let sql = """
            \(pageCTEs(more: unseenCTE, extra: "(SELECT count(*) FROM unseen)"))
            ), deleted AS (
                UPDATE records SET deleted_at = $7::float8, updated_at = $7::float8, sync_seq = fence.sync_seq,
                    change_seq = \(base) + cardinality($4::text[]) + unseen.n
                FROM fence, unseen
                WHERE records.source_seq = fence.source_seq AND records.key = unseen.key
                RETURNING 1
            ), notified AS (
                SELECT pg_notify('\(channel)', 'changes:' || fence.source_id) FROM fence
                WHERE EXISTS (SELECT 1 FROM written) OR EXISTS (SELECT 1 FROM touched WHERE repeat) OR EXISTS (SELECT 1 FROM deleted)
            \(pageCounts)
            ), closed AS (
                UPDATE sync_attempts SET \(AttemptEnd.attemptColumns(now: "$7::float8", status: "$12::text", error: "$13::text"))
                FROM fence WHERE sync_attempts.sync_id = fence.id AND sync_attempts.number = $11::int8
            )
            UPDATE syncs SET \(pageProgress), \(pageChanges(changed: "(counts.changed > 0 OR EXISTS (SELECT 1 FROM deleted))")),
                \(AttemptEnd.syncColumns(
                    .postgres, status: "$12::text", finishedAt: "$14::float8", nextRetryAt: "$15::float8", runAt: "$16::float8",
                    error: "$17::text", failedDelta: "$18::int8", deleted: "(SELECT count(*) FROM deleted)", now: "$7::float8",
                    runningSince: "fence.running_since"))
            FROM fence, counts WHERE syncs.id = fence.id AND (SELECT count(*) FROM notified) >= 0
            RETURNING syncs.*
            """
        var page: CommitPage
        var attempt: Int
        /// Always a completion; its columns come from the one decision all the same.
        var end: AttemptEnd

        func makeBindings() throws -> PostgresBindings {
            var b = try page.makeBindings()
            b.append(attempt)
            b.append(end.status.rawValue)
            b.append(end.attemptError.map(RowCoding.json))
            b.append(end.finishedAt)
            b.append(end.nextRetryAt)
            b.append(end.runAt)
            b.append(end.error.map(RowCoding.json))
            b.append(end.failedDelta)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// End an attempt: the fenced row, a completed full sync's unseen records marked deleted,
    /// the attempt closed, the sync's final state, a wake-up when the sync is handed back.
    struct Finish: PostgresPreparedStatement {
        static let name = "tributary_finish_v5"
        static let sql = """
            WITH fence AS (
                SELECT syncs.id, syncs.seq, syncs.mode, syncs.running_since, sources.seq AS source_seq, syncs.source_id
                FROM syncs JOIN sources ON sources.id = syncs.source_id
                WHERE syncs.id = $1::text AND syncs.lease_token = $2::text
                FOR UPDATE OF syncs
            ), unseen AS (
                SELECT records.key, row_number() OVER (ORDER BY records.key) AS n FROM records, fence
                WHERE $4::bool AND \(AttemptEnd.unseenRecords(mode: "fence.mode", sourceSeq: "fence.source_seq", syncSeq: "fence.seq"))
            ), span AS (
                SELECT count(*) AS n FROM unseen
            ), \(headCTE(sourceSeq: "fence.source_seq", from: "fence, span WHERE span.n > 0"))
            ), deleted AS (
                UPDATE records SET deleted_at = $3::float8, updated_at = $3::float8, sync_seq = fence.seq,
                    change_seq = \(base) + unseen.n
                FROM fence, unseen
                WHERE records.source_seq = fence.source_seq AND records.key = unseen.key
                RETURNING 1
            ), notified AS (
                SELECT pg_notify('\(channel)', 'changes:' || fence.source_id) FROM fence WHERE EXISTS (SELECT 1 FROM deleted)
            ), closed AS (
                UPDATE sync_attempts SET \(AttemptEnd.attemptColumns(now: "$3::float8", status: "$5::text", error: "$6::text"))
                FROM fence WHERE sync_attempts.sync_id = fence.id AND sync_attempts.number = $7::int8
            ), done AS (
                UPDATE syncs SET \(AttemptEnd.syncColumns(
                    .postgres, status: "$5::text", finishedAt: "$8::float8", nextRetryAt: "$9::float8", runAt: "$10::float8",
                    error: "$11::text", failedDelta: "$12::int8", deleted: "(SELECT count(*) FROM deleted)", now: "$3::float8",
                    runningSince: "fence.running_since")),
                    \(SyncChangesSchema.syncColumns(from: base, to: "(SELECT top FROM head)"))
                FROM fence WHERE syncs.id = fence.id
                RETURNING syncs.*
            ), woken AS (
                SELECT pg_notify('\(channel)', 'wake') FROM done WHERE $13::bool
            )
            SELECT done.*, (SELECT count(*) FROM woken) + (SELECT count(*) FROM notified) AS notified FROM done
            """
        var syncID: String
        var token: String
        var now: Double
        var attempt: Int
        var end: AttemptEnd

        func makeBindings() throws -> PostgresBindings {
            var b = PostgresBindings(capacity: 13)
            b.append(syncID)
            b.append(token)
            b.append(now)
            b.append(end.deletesUnseen)
            b.append(end.status.rawValue)
            b.append(end.attemptError.map(RowCoding.json))
            b.append(attempt)
            b.append(end.finishedAt)
            b.append(end.nextRetryAt)
            b.append(end.runAt)
            b.append(end.error.map(RowCoding.json))
            b.append(end.failedDelta)
            b.append(end.wakes)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }
}

extension PostgresConnection {
    /// All rows of a prepared statement.
    func rows<S: PostgresPreparedStatement>(_ statement: S, logger: Logger) async throws -> [PostgresRandomAccessRow]
    where S.Row == PostgresRow {
        var result: [PostgresRandomAccessRow] = []
        for try await row in try await execute(statement, logger: logger) { result.append(row.makeRandomAccess()) }
        return result
    }

    /// The first row of a prepared statement, if any.
    func first<S: PostgresPreparedStatement>(_ statement: S, logger: Logger) async throws -> PostgresRandomAccessRow?
    where S.Row == PostgresRow {
        var result: PostgresRandomAccessRow?
        for try await row in try await execute(statement, logger: logger) where result == nil { result = row.makeRandomAccess() }
        return result
    }
}
