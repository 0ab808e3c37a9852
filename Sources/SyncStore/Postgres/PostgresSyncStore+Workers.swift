import Foundation
import Logging
import PostgresNIO
import SyncCore

extension PostgresSyncStore {
    static let sourceColumns = [
        "id", "name", "kind", "config", "schedule_every_seconds", "priority", "retry", "rate_limit",
        "min_trigger_interval_seconds", "state", "created_at", "updated_at",
    ]
    /// `src.id AS src_id, …`: the claimed sync's source, read back through ``PrefixedRow``.
    static let prefixedSourceColumns = sourceColumns.map { "src.\($0) AS src_\($0)" }.joined(separator: ", ")

    public func claimNext(owner: String, leaseSeconds: Double, now: Date) async throws -> ClaimedSync? {
        try await claimBatch(owner: owner, leaseSeconds: leaseSeconds, now: now, limit: 1).first
    }

    public func claimBatch(owner: String, leaseSeconds: Double, now: Date, limit: Int) async throws -> [ClaimedSync] {
        let logger = logger
        let t = now.timeIntervalSince1970
        // One prepared statement, one round trip for the whole batch (``PostgresStatements/Claim``).
        let statement = PostgresStatements.Claim(now: t, owner: owner, limit: max(1, limit), expiresAt: t + leaseSeconds)
        let rows = try await read { connection in try await connection.rows(statement, logger: logger) }
        return try rows.map { row in
            // The claimed sync's earlier attempts are not loaded: the worker does not need them.
            let sync = try StoreRows.sync(row, attempts: [])
            let source = try StoreRows.source(PrefixedRow(base: row, prefix: "src_"))
            let lease = Lease(syncID: sync.id, owner: owner, token: try row.string("lease_token"), attempt: sync.attempt)
            return ClaimedSync(sync: sync, source: source, lease: lease)
        }
    }

    public func heartbeat(_ lease: Lease, leaseSeconds: Double, now: Date) async throws -> Bool {
        let logger = logger
        let t = now.timeIntervalSince1970
        let row = try await read { connection in
            try await connection.one("""
                UPDATE syncs SET heartbeat_at = \(t), lease_expires_at = \(t + leaseSeconds)
                WHERE id = \(lease.syncID) AND lease_token = \(lease.token) AND status = 'running'
                RETURNING cancel_requested
                """, logger: logger)
        }
        guard let row else { throw SyncStoreError.leaseLost }
        return try row.bool("cancel_requested")
    }

    public func isCancelRequested(_ lease: Lease) async throws -> Bool {
        let logger = logger
        let row = try await read { connection in
            try await connection.one("""
                SELECT cancel_requested FROM syncs WHERE id = \(lease.syncID) AND lease_token = \(lease.token) AND status = 'running'
                """, logger: logger)
        }
        guard let row else { throw SyncStoreError.leaseLost }
        return try row.bool("cancel_requested")
    }

    public func commitPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress {
        if let progress = try await commitPageInOneStatement(page, lease: lease, now: now) { return progress }
        return try await commitPageInTransaction(page, lease: lease, now: now)
    }

    /// The common page (distinct keys, no record errors, no source state) in one statement,
    /// so one round trip and an implicit transaction. Every step hangs off the fence row, which
    /// also requires the page to follow the stored one: no row back means nothing was written,
    /// and the transactional path then tells a lost lease from a replayed page or a gap.
    func commitPageInOneStatement(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress? {
        guard Self.isSimple(page) else { return nil }
        let logger = logger
        let t = now.timeIntervalSince1970
        let columns = PostgresRecordWriter.columns(page.records)
        let statement = PostgresStatements.CommitPage(
            syncID: lease.syncID, token: lease.token, storedPages: page.pageNumber - 1, keys: columns.keys, data: columns.data,
            hashes: columns.hashes, now: t, records: page.records.count, bytesRead: page.bytesRead,
            checkpoint: page.checkpoint.map(StoreRows.json))
        let row = try await read { connection in try await connection.first(statement, logger: logger) }
        return try row.map { try StoreRows.sync($0, attempts: []).progress }
    }

    /// Whether a page can go through the one-statement paths.
    static func isSimple(_ page: PageCommit) -> Bool {
        page.recordErrors.isEmpty && (page.sourceState?.isEmpty ?? true) && PostgresRecordWriter.distinctRounds(page.records).count <= 1
    }

    public func completeWithFinalPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> Sync {
        if Self.isSimple(page) {
            let logger = logger
            let t = now.timeIntervalSince1970
            let columns = PostgresRecordWriter.columns(page.records)
            let statement = PostgresStatements.CompleteWithPage(
                page: PostgresStatements.CommitPage(
                    syncID: lease.syncID, token: lease.token, storedPages: page.pageNumber - 1, keys: columns.keys,
                    data: columns.data, hashes: columns.hashes, now: t, records: page.records.count, bytesRead: page.bytesRead,
                    checkpoint: page.checkpoint.map(StoreRows.json)),
                attempt: lease.attempt)
            if let row = try await read({ connection in try await connection.first(statement, logger: logger) }) {
                return try StoreRows.sync(row, attempts: [])
            }
        }
        // Not simple, or nothing written (lost lease, replayed page, gap): the two-step path says which.
        _ = try await commitPage(page, lease: lease, now: now)
        return try await finish(lease, outcome: .completed, now: now)
    }

    func commitPageInTransaction(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress {
        let logger = logger
        let t = now.timeIntervalSince1970
        return try await write { connection in
            // Fence first, and hold the row: a rescuer cannot take the lease until this commits.
            guard let fence = try await connection.one("""
                SELECT syncs.source_id, syncs.mode, syncs.seq AS sync_seq, sources.seq AS source_seq, syncs.pages
                FROM syncs JOIN sources ON sources.id = syncs.source_id
                WHERE syncs.id = \(lease.syncID) AND syncs.lease_token = \(lease.token) AND syncs.status = 'running'
                FOR UPDATE OF syncs
                """, logger: logger) else { throw SyncStoreError.leaseLost }
            // A page that is already in (a retried commit whose first COMMIT did land) counts once.
            let stored = try fence.int("pages")
            if stored >= page.pageNumber {
                guard let sync = try await Self.sync(connection, id: lease.syncID, logger: logger) else { throw SyncStoreError.leaseLost }
                return sync.progress
            }
            if stored < page.pageNumber - 1 { throw SyncStoreError.checkpointBehind(storedPages: stored, page: page.pageNumber) }
            let sourceID = try fence.string("source_id")
            let sourceSeq = Int64(try fence.int("source_seq")), syncSeq = Int64(try fence.int("sync_seq"))
            let fullMode = try fence.string("mode") == SyncMode.full.rawValue
            let counts = try await PostgresRecordWriter.upsert(
                page.records, sourceSeq: sourceSeq, syncSeq: syncSeq, now: t, connection: connection, logger: logger)
            if fullMode {
                try await PostgresRecordWriter.markSeen(page.recordErrorKeys, sourceSeq: sourceSeq, syncSeq: syncSeq, connection: connection, logger: logger)
            }
            for error in page.recordErrors {
                try await connection.run("""
                    INSERT INTO record_errors (sync_id, page, record_key, message)
                    VALUES (\(lease.syncID), \(error.page), \(error.recordKey), \(error.message))
                    """, logger: logger)
            }
            if let state = page.sourceState, !state.isEmpty {
                try await connection.run(
                    "UPDATE sources SET state = (state::jsonb || \(StoreRows.json(state))::jsonb)::text WHERE id = \(sourceID)",
                    logger: logger)
            }
            guard let row = try await connection.one("""
                UPDATE syncs SET pages = pages + 1, records_read = records_read + \(page.records.count + page.recordErrors.count),
                    records_created = records_created + \(counts.created), records_updated = records_updated + \(counts.updated),
                    records_unchanged = records_unchanged + \(counts.unchanged), records_failed = records_failed + \(page.recordErrors.count),
                    bytes_read = bytes_read + \(page.bytesRead), checkpoint = \(page.checkpoint.map(StoreRows.json)),
                    checkpoint_at = \(t), heartbeat_at = \(t)
                WHERE id = \(lease.syncID)
                RETURNING *
                """, logger: logger) else { throw SyncStoreError.leaseLost }
            return try StoreRows.sync(row, attempts: []).progress
        }
    }

    public func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync {
        let logger = logger
        let t = now.timeIntervalSince1970
        try StoreRows.checked(from: .running, to: outcome.status)
        let change = FinishChange(outcome: outcome, runAt: 0, now: t)
        let newRunAt: Double? = switch outcome {
        case .retrying, .released: change.runAt
        default: nil
        }
        var deleteUnseen = false
        if case .completed = outcome { deleteUnseen = true }
        let wake = outcome.status == .queued
        let statement = PostgresStatements.Finish(
            syncID: lease.syncID, token: lease.token, now: t, deleteUnseen: deleteUnseen, status: outcome.status.rawValue,
            attemptError: change.attemptError.map(StoreRows.json), attempt: lease.attempt, finishedAt: change.finishedAt,
            nextRetryAt: change.nextRetryAt, runAt: newRunAt, error: change.error.map(StoreRows.json),
            failedDelta: change.failedDelta, wake: wake)
        return try await read { connection in
            guard let row = try await connection.first(statement, logger: logger) else { throw SyncStoreError.leaseLost }
            // The attempt closed above is not visible to this statement's snapshot: read the log after it.
            let attempts = try await connection.all(
                "SELECT * FROM sync_attempts WHERE sync_id = \(lease.syncID) ORDER BY number", logger: logger
            ).map { try StoreRows.attempt($0) }
            return try StoreRows.sync(row, attempts: attempts)
        }
    }

    public func rescueExpiredLeases(now: Date) async throws -> [String] {
        let logger = logger
        let t = now.timeIntervalSince1970
        let error = StoreRows.json(SyncError(.internalError, "lease expired: the worker stopped heartbeating", retryable: true))
        // One statement: whichever node's rescuer runs first takes the rows; the others find none.
        let rows = try await read { connection in
            try await connection.all("""
                WITH rescued AS (
                    UPDATE syncs SET
                        status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                        finished_at = CASE WHEN cancel_requested THEN \(t) END,
                        run_at = \(t), running_since = NULL, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
                    WHERE status = 'running' AND lease_expires_at < \(t)
                    RETURNING id, attempt, status
                ), closed AS (
                    UPDATE sync_attempts SET finished_at = \(t), status = rescued.status, error = \(error)
                    FROM rescued WHERE sync_attempts.sync_id = rescued.id AND sync_attempts.number = rescued.attempt
                ), woken AS (
                    SELECT pg_notify(\(Self.channel), 'wake') FROM (SELECT 1 FROM rescued LIMIT 1) AS any_rescued
                )
                SELECT rescued.id, (SELECT count(*) FROM woken) AS notified FROM rescued
                """, logger: logger)
        }
        return try rows.map { try $0.string("id") }
    }

    public func nextRunAt() async throws -> Date? {
        let logger = logger
        let row = try await read { connection in
            try await connection.one("SELECT MIN(run_at) AS t FROM syncs WHERE status IN ('queued', 'retrying')", logger: logger)
        }
        return StoreRows.date(try row?.optionalDouble("t"))
    }

    // MARK: Nodes and health

    public func registerNode(_ node: NodeInfo) async throws {
        try await heartbeatNode(node, now: node.heartbeatAt)
    }

    public func heartbeatNode(_ node: NodeInfo, now: Date) async throws {
        let logger = logger
        try await read { connection in
            try await connection.run("""
                INSERT INTO nodes (id, role, workers, started_at, heartbeat_at)
                VALUES (\(node.id), \(node.role), \(node.workers), \(node.startedAt.timeIntervalSince1970), \(now.timeIntervalSince1970))
                ON CONFLICT (id) DO UPDATE SET role = EXCLUDED.role, workers = EXCLUDED.workers, heartbeat_at = EXCLUDED.heartbeat_at
                """, logger: logger)
        }
    }

    public func removeNode(id: String) async throws {
        let logger = logger
        try await read { connection in try await connection.run("DELETE FROM nodes WHERE id = \(id)", logger: logger) }
    }

    public func healthSnapshot(now: Date) async throws -> HealthSnapshot {
        let logger = logger
        let t = now.timeIntervalSince1970
        return try await read { connection in
            let queue = try await connection.one("""
                SELECT COUNT(*) FILTER (WHERE status = 'queued') AS queued,
                       MIN(queued_at) FILTER (WHERE status = 'queued') AS oldest,
                       COUNT(*) FILTER (WHERE status = 'running') AS running,
                       COUNT(*) FILTER (WHERE status = 'running' AND lease_expires_at < \(t)) AS expired
                FROM syncs WHERE status IN ('queued', 'running')
                """, logger: logger)
            let nodes = try await connection.all("SELECT * FROM nodes ORDER BY id", logger: logger).map { try StoreRows.node($0) }
            let failing = try await connection.all(PostgresQuery(unsafeSQL: StoreRows.failingSourcesSQL), logger: logger)
                .map { try StoreRows.sourceRef($0) }
            var binds = PostgresBindings()
            binds.append(t)
            let stale = try await connection.all(PostgresQuery(unsafeSQL: StoreRows.staleSourcesSQL(now: "$1::float8"), binds: binds), logger: logger)
                .map { try StoreRows.sourceRef($0) }
            return HealthSnapshot(
                queued: try queue?.int("queued") ?? 0, oldestQueuedAt: StoreRows.date(try queue?.optionalDouble("oldest")),
                running: try queue?.int("running") ?? 0, expiredLeases: try queue?.int("expired") ?? 0, nodes: nodes,
                failingSources: failing, staleSources: stale)
        }
    }
}

extension PostgresSyncStore: StoreEventSource {
    /// LISTENs on a pooled connection held for as long as this runs; NOTIFYs sent by
    /// enqueue, retry, release, rescue (`wake`) and cancel (`cancel:<id>`) arrive here.
    public func listen(_ onEvent: @escaping @Sendable (StoreEvent) -> Void) async throws {
        do {
            try await client.withConnection { connection in
                try await connection.listen(on: Self.channel) { notifications in
                    // Anything queued while nobody listened is found by the workers' poll; say so.
                    onEvent(.wake)
                    for try await notification in notifications {
                        if let event = StoreEvent(payload: notification.payload) { onEvent(event) }
                    }
                }
            }
        } catch {
            throw Self.mapped(error)
        }
    }
}
