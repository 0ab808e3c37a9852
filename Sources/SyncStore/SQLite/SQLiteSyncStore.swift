import Foundation
import GRDB
import SyncCore

/// The embedded default store: one SQLite file in WAL mode.
///
/// Durability: `synchronous = NORMAL` in WAL mode. Every commit survives a
/// crash of the process (SIGKILL included); a power loss or OS crash may lose
/// the last few commits, but never tears one: a page's records, counters and
/// checkpoint are lost or kept together, so a resumed sync refetches that page
/// and counts it once (DESIGN.md invariant 2). `FULL` would fsync every page
/// for no gain in correctness.
public final class SQLiteSyncStore: SyncStore {
    let pool: DatabasePool
    /// The database file.
    public let path: String

    /// Opens (creating if needed) the database at `path`.
    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.foreignKeysEnabled = true
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        pool = try DatabasePool(path: path, configuration: config)
    }

    public func migrate() async throws {
        try await SQLiteSchema.migrate(pool)
    }

    public func ping() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    public func schemaVersion() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 }
    }

    // MARK: Sources

    public func createSource(_ source: Source) async throws -> Source {
        do {
            try await pool.write { db in
                try db.execute(
                    sql: """
                    INSERT INTO sources (id, name, kind, config, schedule_every_seconds, priority, retry, rate_limit,
                        min_trigger_interval_seconds, state, created_at, updated_at, seq)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM sources))
                    """,
                    arguments: [
                        source.id, source.name, source.kind, StoreRows.json(source.config), source.schedule?.everySeconds,
                        source.priority, StoreRows.json(source.retry), source.rateLimit.map(StoreRows.json),
                        source.minTriggerIntervalSeconds, StoreRows.json(source.state),
                        source.createdAt.timeIntervalSince1970, source.updatedAt.timeIntervalSince1970,
                    ])
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw SyncStoreError.nameTaken(source.name)
        }
        return source
    }

    public func source(idOrName: String) async throws -> Source? {
        try await pool.read { db in try Self.source(db, idOrName: idOrName) }
    }

    static func source(_ db: Database, idOrName: String) throws -> Source? {
        let row = try Row.fetchOne(db, sql: "SELECT * FROM sources WHERE id = ?", arguments: [idOrName])
            ?? Row.fetchOne(db, sql: "SELECT * FROM sources WHERE name = ?", arguments: [idOrName])
        return try row.map({ try StoreRows.source($0) })
    }

    public func listSources(limit: Int, after: String?) async throws -> [Source] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM sources WHERE id > ? ORDER BY id LIMIT ?", arguments: [after ?? "", limit]
            ).map({ try StoreRows.source($0) })
        }
    }

    public func summary(sourceID: String) async throws -> SourceSyncSummary {
        try await pool.read { db in
            let latestID = try String.fetchOne(
                db, sql: "SELECT id FROM syncs WHERE source_id = ? ORDER BY id DESC LIMIT 1", arguments: [sourceID])
            let finishedID = try String.fetchOne(
                db, sql: "SELECT id FROM syncs WHERE source_id = ? AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1",
                arguments: [sourceID])
            let lastCompleted = try Double.fetchOne(
                db, sql: "SELECT MAX(finished_at) FROM syncs WHERE source_id = ? AND status = 'completed'", arguments: [sourceID])
            return SourceSyncSummary(
                latest: try latestID.flatMap { try Self.sync(db, id: $0) },
                latestFinished: try finishedID.flatMap { try Self.sync(db, id: $0) },
                lastCompletedAt: StoreRows.date(lastCompleted))
        }
    }

    public func updateSource(_ source: Source) async throws -> Source {
        do {
            let changed = try await pool.write { db in
                try db.execute(
                    sql: """
                    UPDATE sources SET name = ?, kind = ?, config = ?, schedule_every_seconds = ?, priority = ?, retry = ?,
                        rate_limit = ?, min_trigger_interval_seconds = ?, updated_at = ?
                    WHERE id = ?
                    """,
                    arguments: [
                        source.name, source.kind, StoreRows.json(source.config), source.schedule?.everySeconds, source.priority,
                        StoreRows.json(source.retry), source.rateLimit.map(StoreRows.json), source.minTriggerIntervalSeconds,
                        source.updatedAt.timeIntervalSince1970, source.id,
                    ])
                return db.changesCount
            }
            guard changed == 1 else { throw SyncStoreError.notFound("source \(source.id)") }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw SyncStoreError.nameTaken(source.name)
        }
        guard let updated = try await self.source(idOrName: source.id) else { throw SyncStoreError.notFound("source \(source.id)") }
        return updated
    }

    public func deleteSource(id: String) async throws {
        try await pool.write { db in
            if let active = try String.fetchOne(
                db, sql: "SELECT id FROM syncs WHERE source_id = ? AND status IN (\(SQLiteSchema.activeList))", arguments: [id]
            ) {
                throw SyncStoreError.sourceInUse(activeSyncID: active)
            }
            try db.execute(sql: "DELETE FROM records WHERE source_seq = (SELECT seq FROM sources WHERE id = ?)", arguments: [id])
            try db.execute(sql: "DELETE FROM sources WHERE id = ?", arguments: [id])
            guard db.changesCount == 1 else { throw SyncStoreError.notFound("source \(id)") }
        }
    }

    // MARK: Syncs

    public func enqueue(_ request: EnqueueRequest) async throws -> EnqueueOutcome {
        try await pool.write { db in
            guard let sourceRow = try Row.fetchOne(db, sql: "SELECT * FROM sources WHERE id = ?", arguments: [request.sourceID]) else {
                throw SyncStoreError.notFound("source \(request.sourceID)")
            }
            let source = try StoreRows.source(sourceRow)
            let now = request.now.timeIntervalSince1970
            if let key = request.idempotencyKey,
               let row = try Row.fetchOne(
                db, sql: "SELECT fingerprint, sync_id FROM idempotency_keys WHERE source_id = ? AND key = ?",
                arguments: [source.id, key]) {
                guard (row["fingerprint"] as String) == request.requestFingerprint else { throw SyncStoreError.idempotencyKeyReused }
                guard let sync = try Self.sync(db, id: row["sync_id"]) else { throw SyncStoreError.notFound("sync") }
                return .replayed(sync)
            }
            if let conflict = try Self.activeSyncConflict(db, sourceID: source.id) { throw conflict }
            if source.minTriggerIntervalSeconds > 0, let last = sourceRow["last_queued_at"] as Double?,
               now - last < source.minTriggerIntervalSeconds {
                throw SyncStoreError.rateLimited(retryAfterSeconds: source.minTriggerIntervalSeconds - (now - last))
            }
            let id = try Self.insertSync(db, source: source, mode: request.mode, priority: request.priority, trigger: request.trigger, now: request.now)
            if let key = request.idempotencyKey {
                try db.execute(
                    sql: "INSERT INTO idempotency_keys (source_id, key, fingerprint, sync_id, created_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [source.id, key, request.requestFingerprint, id, now])
            }
            guard let sync = try Self.sync(db, id: id) else { throw SyncStoreError.notFound("sync \(id)") }
            return .created(sync)
        }
    }

    /// `syncAlreadyActive` naming the source's active sync, if it has one.
    static func activeSyncConflict(_ db: Database, sourceID: String) throws -> SyncStoreError? {
        guard let active = try Row.fetchOne(
            db, sql: "SELECT id, status FROM syncs WHERE source_id = ? AND status IN (\(SQLiteSchema.activeList))",
            arguments: [sourceID]) else { return nil }
        return .syncAlreadyActive(activeSyncID: active["id"], status: SyncStatus(rawValue: active["status"]) ?? .queued)
    }

    /// Inserts a queued sync and stamps the source's `last_queued_at`; the partial unique
    /// index, not any check before it, turns a second active sync into `syncAlreadyActive`.
    static func insertSync(_ db: Database, source: Source, mode: SyncMode, priority: Int, trigger: SyncTrigger, now: Date) throws -> String {
        let id = Identifier.make("syn", now: now)
        let t = now.timeIntervalSince1970
        do {
            try db.execute(
                sql: """
                INSERT INTO syncs (id, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at, seq)
                VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM syncs))
                """,
                arguments: [id, source.id, mode.rawValue, priority, trigger.rawValue, source.retry.maxAttempts, t, t])
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw try activeSyncConflict(db, sourceID: source.id) ?? error
        }
        try db.execute(sql: "UPDATE sources SET last_queued_at = ? WHERE id = ?", arguments: [t, source.id])
        return id
    }

    public func enqueueDueSchedules(now: Date) async throws -> [String] {
        try await pool.write { db in
            let due = try Row.fetchAll(
                db,
                sql: """
                SELECT * FROM sources
                WHERE schedule_every_seconds IS NOT NULL
                  AND (last_queued_at IS NULL OR last_queued_at + schedule_every_seconds <= ?)
                  AND NOT EXISTS (SELECT 1 FROM syncs WHERE syncs.source_id = sources.id AND syncs.status IN (\(SQLiteSchema.activeList)))
                """,
                arguments: [now.timeIntervalSince1970]
            ).map({ try StoreRows.source($0) })
            return try due.map { source in
                try Self.insertSync(db, source: source, mode: source.defaultMode, priority: source.priority, trigger: .schedule, now: now)
            }
        }
    }

    public func sync(id: String) async throws -> Sync? {
        try await pool.read { db in try Self.sync(db, id: id) }
    }

    static func sync(_ db: Database, id: String) throws -> Sync? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM syncs WHERE id = ?", arguments: [id]) else { return nil }
        let attempts = try Row.fetchAll(
            db, sql: "SELECT * FROM sync_attempts WHERE sync_id = ? ORDER BY number", arguments: [id]
        ).map { try StoreRows.attempt($0) }
        return try StoreRows.sync(row, attempts: attempts)
    }

    public func listSyncs(_ filter: SyncFilter, limit: Int, before: String?) async throws -> [Sync] {
        try await pool.read { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            if let before { clauses.append("id < ?"); arguments += [before] }
            if let sourceID = filter.sourceID { clauses.append("source_id = ?"); arguments += [sourceID] }
            if !filter.statuses.isEmpty {
                clauses.append("status IN (\(filter.statuses.map { _ in "?" }.joined(separator: ", ")))")
                for s in filter.statuses { arguments += [s.rawValue] }
            }
            if let since = filter.since { clauses.append("queued_at >= ?"); arguments += [since.timeIntervalSince1970] }
            if let until = filter.until { clauses.append("queued_at < ?"); arguments += [until.timeIntervalSince1970] }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments += [limit]
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM syncs \(whereClause) ORDER BY id DESC LIMIT ?", arguments: arguments)
            guard !rows.isEmpty else { return [] }
            let ids: [String] = rows.map { $0["id"] }
            var attempts: [String: [SyncAttempt]] = [:]
            let placeholders = ids.map { _ in "?" }.joined(separator: ", ")
            for row in try Row.fetchAll(
                db, sql: "SELECT * FROM sync_attempts WHERE sync_id IN (\(placeholders)) ORDER BY sync_id, number",
                arguments: StatementArguments(ids)) {
                attempts[row["sync_id"], default: []].append(try StoreRows.attempt(row))
            }
            return try rows.map { try StoreRows.sync($0, attempts: attempts[$0["id"]] ?? []) }
        }
    }

    public func requestCancel(syncID: String, now: Date) async throws -> Sync {
        try await pool.write { db in
            guard let sync = try Self.sync(db, id: syncID) else { throw SyncStoreError.notFound("sync \(syncID)") }
            switch sync.status {
            case .cancelled:
                return sync
            case .completed, .failed:
                throw SyncStoreError.invalidState(current: sync.status, message: "A \(sync.status.rawValue) sync cannot be cancelled.")
            case .queued, .retrying:
                try StoreRows.checked(from: sync.status, to: .cancelled)
                try db.execute(
                    sql: """
                    UPDATE syncs SET status = 'cancelled', finished_at = ?, cancel_requested = 1, next_retry_at = NULL
                    WHERE id = ? AND status = ?
                    """,
                    arguments: [now.timeIntervalSince1970, syncID, sync.status.rawValue])
            case .running:
                try db.execute(sql: "UPDATE syncs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", arguments: [syncID])
            }
            guard let updated = try Self.sync(db, id: syncID) else { throw SyncStoreError.notFound("sync \(syncID)") }
            return updated
        }
    }

    public func retry(syncID: String, now: Date) async throws -> Sync {
        try await pool.write { db in
            guard let sync = try Self.sync(db, id: syncID) else { throw SyncStoreError.notFound("sync \(syncID)") }
            guard SyncTransition.isAllowed(from: sync.status, to: .queued), sync.status.isTerminal else {
                throw SyncStoreError.invalidState(current: sync.status, message: "Only failed or cancelled syncs can be retried.")
            }
            do {
                try db.execute(
                    sql: """
                    UPDATE syncs SET status = 'queued', trigger = 'retry', failed_attempts = 0, cancel_requested = 0,
                        error = NULL, finished_at = NULL, next_retry_at = NULL, run_at = ?,
                        max_attempts = (SELECT json_extract(retry, '$.max_attempts') FROM sources WHERE sources.id = syncs.source_id)
                    WHERE id = ? AND status = ?
                    """,
                    arguments: [now.timeIntervalSince1970, syncID, sync.status.rawValue])
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                throw try Self.activeSyncConflict(db, sourceID: sync.sourceID) ?? error
            }
            guard let updated = try Self.sync(db, id: syncID) else { throw SyncStoreError.notFound("sync \(syncID)") }
            return updated
        }
    }

    // MARK: Workers

    public func claimNext(owner: String, leaseSeconds: Double, now: Date) async throws -> ClaimedSync? {
        let token = UUID().uuidString
        let t = now.timeIntervalSince1970
        return try await pool.write { db -> ClaimedSync? in
            guard let row = try Row.fetchOne(
                db,
                sql: """
                SELECT id, status FROM syncs
                WHERE status IN ('queued', 'retrying') AND run_at <= ?
                ORDER BY priority DESC, run_at LIMIT 1
                """,
                arguments: [t]) else { return nil }
            let id: String = row["id"]
            try StoreRows.checked(from: SyncStatus(rawValue: row["status"]) ?? .queued, to: .running)
            try db.execute(
                sql: """
                UPDATE syncs SET status = 'running', attempt = attempt + 1, lease_owner = ?, lease_token = ?,
                    lease_expires_at = ?, heartbeat_at = ?, started_at = COALESCE(started_at, ?), running_since = ?,
                    next_retry_at = NULL
                WHERE id = ?
                """,
                arguments: [owner, token, t + leaseSeconds, t, t, t, id])
            let attempt = try Int.fetchOne(db, sql: "SELECT attempt FROM syncs WHERE id = ?", arguments: [id]) ?? 1
            try db.execute(
                sql: "INSERT INTO sync_attempts (sync_id, number, started_at, status, node) VALUES (?, ?, ?, 'running', ?)",
                arguments: [id, attempt, t, owner])
            guard let sync = try Self.sync(db, id: id),
                  let source = try Self.source(db, idOrName: sync.sourceID) else { return nil }
            return ClaimedSync(sync: sync, source: source, lease: Lease(syncID: id, owner: owner, token: token, attempt: attempt))
        }
    }

    public func heartbeat(_ lease: Lease, leaseSeconds: Double, now: Date) async throws -> Bool {
        let t = now.timeIntervalSince1970
        return try await pool.write { db in
            guard let cancel = try Bool.fetchOne(
                db,
                sql: """
                UPDATE syncs SET heartbeat_at = ?, lease_expires_at = ?
                WHERE id = ? AND lease_token = ? AND status = 'running'
                RETURNING cancel_requested
                """,
                arguments: [t, t + leaseSeconds, lease.syncID, lease.token]) else { throw SyncStoreError.leaseLost }
            return cancel
        }
    }

    public func isCancelRequested(_ lease: Lease) async throws -> Bool {
        try await pool.read { db in
            guard let cancel = try Bool.fetchOne(
                db, sql: "SELECT cancel_requested FROM syncs WHERE id = ? AND lease_token = ? AND status = 'running'",
                arguments: [lease.syncID, lease.token]) else { throw SyncStoreError.leaseLost }
            return cancel
        }
    }

    public func commitPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress {
        let t = now.timeIntervalSince1970
        return try await pool.write { db in
            // Fence first: inside this IMMEDIATE transaction nobody else can take the lease.
            guard let row = try Row.fetchOne(
                db, sql: """
                    SELECT syncs.source_id, syncs.mode, syncs.seq AS sync_seq, sources.seq AS source_seq, syncs.pages
                    FROM syncs JOIN sources ON sources.id = syncs.source_id
                    WHERE syncs.id = ? AND syncs.lease_token = ? AND syncs.status = 'running'
                    """,
                arguments: [lease.syncID, lease.token]) else { throw SyncStoreError.leaseLost }
            // A page that is already in (a retried commit whose first COMMIT did land) counts once.
            let stored: Int = row["pages"]
            if stored >= page.pageNumber {
                guard let sync = try Self.sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
                return sync.progress
            }
            if stored < page.pageNumber - 1 { throw SyncStoreError.checkpointBehind(storedPages: stored, page: page.pageNumber) }
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
            try db.execute(
                sql: """
                UPDATE syncs SET pages = pages + 1, records_read = records_read + ?, records_created = records_created + ?,
                    records_updated = records_updated + ?, records_unchanged = records_unchanged + ?,
                    records_failed = records_failed + ?, bytes_read = bytes_read + ?, checkpoint = ?, checkpoint_at = ?,
                    heartbeat_at = ?
                WHERE id = ?
                """,
                arguments: [
                    page.records.count + page.recordErrors.count, counts.created, counts.updated, counts.unchanged,
                    page.recordErrors.count, page.bytesRead, page.checkpoint.map(StoreRows.json), t, t, lease.syncID,
                ])
            if let state = page.sourceState, !state.isEmpty {
                let current = try String.fetchOne(db, sql: "SELECT state FROM sources WHERE id = ?", arguments: [sourceID])
                var merged = StoreRows.decode(JSONObject.self, current) ?? [:]
                merged.merge(state) { _, new in new }
                try db.execute(sql: "UPDATE sources SET state = ? WHERE id = ?", arguments: [StoreRows.json(merged), sourceID])
            }
            guard let sync = try Self.sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
            return sync.progress
        }
    }

    public func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync {
        let t = now.timeIntervalSince1970
        return try await pool.write { db in
            guard let row = try Row.fetchOne(
                db, sql: "SELECT * FROM syncs WHERE id = ? AND lease_token = ? AND status = 'running'",
                arguments: [lease.syncID, lease.token]) else { throw SyncStoreError.leaseLost }
            let current = try StoreRows.sync(row, attempts: [])
            try StoreRows.checked(from: current.status, to: outcome.status)
            let ranFor = max(0, t - ((row["running_since"] as Double?) ?? t))
            var change = FinishChange(outcome: outcome, runAt: (row["run_at"] as Double?) ?? t, now: t)
            if case .completed = outcome, current.mode == .full {
                try db.execute(
                    sql: """
                    UPDATE records SET deleted_at = ?1, updated_at = ?1, sync_seq = ?2
                    WHERE source_seq = (SELECT seq FROM sources WHERE id = ?3) AND deleted_at IS NULL AND seen_sync_seq <> ?2
                    """,
                    arguments: [t, row["seq"] as Int64, current.sourceID])
                change.deleted = db.changesCount
            }
            try db.execute(
                sql: """
                UPDATE syncs SET status = ?, finished_at = ?, next_retry_at = ?, run_at = ?, error = ?,
                    failed_attempts = failed_attempts + ?, records_deleted = records_deleted + ?,
                    run_seconds = run_seconds + ?, running_since = NULL,
                    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
                WHERE id = ? AND lease_token = ?
                """,
                arguments: [
                    outcome.status.rawValue, change.finishedAt, change.nextRetryAt, change.runAt, change.error.map(StoreRows.json),
                    change.failedDelta, change.deleted, ranFor, lease.syncID, lease.token,
                ])
            try db.execute(
                sql: "UPDATE sync_attempts SET finished_at = ?, status = ?, error = ? WHERE sync_id = ? AND number = ?",
                arguments: [t, outcome.status.rawValue, change.attemptError.map(StoreRows.json), lease.syncID, lease.attempt])
            guard let sync = try Self.sync(db, id: lease.syncID) else { throw SyncStoreError.leaseLost }
            return sync
        }
    }

    public func rescueExpiredLeases(now: Date) async throws -> [String] {
        let t = now.timeIntervalSince1970
        return try await pool.write { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT id, attempt, cancel_requested, running_since FROM syncs WHERE status = 'running' AND lease_expires_at < ?",
                arguments: [t])
            for row in rows {
                let id: String = row["id"]
                let cancel: Bool = row["cancel_requested"]
                let to: SyncStatus = cancel ? .cancelled : .queued
                try StoreRows.checked(from: .running, to: to)
                try db.execute(
                    sql: """
                    UPDATE syncs SET status = ?, finished_at = ?, run_at = ?, running_since = NULL,
                        lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
                    WHERE id = ? AND status = 'running'
                    """,
                    arguments: [to.rawValue, cancel ? t : nil, t, id])
                let error = SyncError(.internalError, "lease expired: the worker stopped heartbeating", retryable: true)
                try db.execute(
                    sql: "UPDATE sync_attempts SET finished_at = ?, status = ?, error = ? WHERE sync_id = ? AND number = ?",
                    arguments: [t, to.rawValue, StoreRows.json(error), id, row["attempt"] as Int])
            }
            return rows.map { $0["id"] }
        }
    }

    public func nextRunAt() async throws -> Date? {
        try await pool.read { db in
            StoreRows.date(try Double.fetchOne(db, sql: "SELECT MIN(run_at) FROM syncs WHERE status IN ('queued', 'retrying')"))
        }
    }

    // MARK: Nodes and health

    public func registerNode(_ node: NodeInfo) async throws {
        try await heartbeatNode(node, now: node.heartbeatAt)
    }

    public func heartbeatNode(_ node: NodeInfo, now: Date) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                INSERT INTO nodes (id, role, workers, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET role = excluded.role, workers = excluded.workers, heartbeat_at = excluded.heartbeat_at
                """,
                arguments: [node.id, node.role, node.workers, node.startedAt.timeIntervalSince1970, now.timeIntervalSince1970])
        }
    }

    public func removeNode(id: String) async throws {
        try await pool.write { db in try db.execute(sql: "DELETE FROM nodes WHERE id = ?", arguments: [id]) }
    }

    public func healthSnapshot(now: Date) async throws -> HealthSnapshot {
        try await pool.read { db in
            let queue = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) FILTER (WHERE status = 'queued') AS queued,
                       MIN(queued_at) FILTER (WHERE status = 'queued') AS oldest,
                       COUNT(*) FILTER (WHERE status = 'running') AS running,
                       COUNT(*) FILTER (WHERE status = 'running' AND lease_expires_at < ?) AS expired
                FROM syncs WHERE status IN ('queued', 'running')
                """, arguments: [now.timeIntervalSince1970])
            let nodes = try Row.fetchAll(db, sql: "SELECT * FROM nodes ORDER BY id").map { try StoreRows.node($0) }
            let failing = try Row.fetchAll(db, sql: StoreRows.failingSourcesSQL).map { try StoreRows.sourceRef($0) }
            let stale = try Row.fetchAll(db, sql: StoreRows.staleSourcesSQL(now: "?"), arguments: [now.timeIntervalSince1970])
                .map { try StoreRows.sourceRef($0) }
            return HealthSnapshot(
                queued: queue?["queued"] ?? 0, oldestQueuedAt: StoreRows.date(queue?["oldest"]),
                running: queue?["running"] ?? 0, expiredLeases: queue?["expired"] ?? 0, nodes: nodes,
                failingSources: failing, staleSources: stale)
        }
    }

    // MARK: Records

    public func records(sourceID: String, limit: Int, after: String?, includeDeleted: Bool) async throws -> [StoredRecord] {
        try await pool.read { db in
            let deleted = includeDeleted ? "" : "AND deleted_at IS NULL"
            return try Row.fetchAll(
                db, sql: """
                    SELECT records.*, syncs.id AS sync_id FROM records LEFT JOIN syncs ON syncs.seq = records.sync_seq
                    WHERE source_seq = (SELECT seq FROM sources WHERE id = ?) AND key > ? \(deleted) ORDER BY key LIMIT ?
                    """,
                arguments: [sourceID, after ?? "", limit]
            ).map { try StoreRows.record($0) }
        }
    }

    public func record(sourceID: String, key: String) async throws -> StoredRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT records.*, syncs.id AS sync_id FROM records LEFT JOIN syncs ON syncs.seq = records.sync_seq
                WHERE source_seq = (SELECT seq FROM sources WHERE id = ?) AND key = ?
                """, arguments: [sourceID, key])
                .map { try StoreRows.record($0) }
        }
    }

    public func recordErrors(syncID: String, limit: Int, after: Int64?) async throws -> [(id: Int64, error: SyncCore.RecordError)] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM record_errors WHERE sync_id = ? AND id > ? ORDER BY id LIMIT ?",
                arguments: [syncID, after ?? 0, limit]
            ).map { try StoreRows.recordError($0) }
        }
    }
}
