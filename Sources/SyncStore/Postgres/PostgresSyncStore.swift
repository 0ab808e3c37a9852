import Foundation
import Logging
import NIOCore
import PostgresNIO
import SyncCore
import Synchronization

/// The scale-out store: many `tributary serve` processes on one PostgreSQL database.
///
/// Same protocol, same invariants as ``SQLiteSyncStore``; what SQLite gets from its single
/// writer, PostgreSQL gets from row locks: claims use `FOR UPDATE SKIP LOCKED`, every
/// write to a source's syncs first locks the source row (so an enqueue, a retry, a
/// schedule and a delete of one source are serialised, and an idempotency key replays
/// instead of racing), and the partial unique index still refuses a second active sync.
/// Enqueues and cancels `NOTIFY` the other nodes (``PostgresEventListener``); nothing
/// depends on the notification arriving: workers and running syncs also poll.
public final class PostgresSyncStore: SyncStore {
    /// The LISTEN/NOTIFY channel: payload `wake` or `cancel:<sync id>`.
    public static let channel = "tributary_events"

    let client: PostgresClient
    let logger: Logger
    private let clientTask: Task<Void, Never>

    /// Creates the store and starts its connection pool (it owns the pool's run loop, so
    /// the store is usable from commands and tests that have no service group).
    /// - Parameter maximumConnections: the pool's size; see docs/deployment.md for sizing.
    public init(url: String, maximumConnections: Int = 20, logger: Logger = Logger(label: "tributary.postgres")) throws {
        var configuration = try PostgresURL.configuration(url)
        configuration.options.maximumConnections = maximumConnections
        // One connection attempt gives up after this long; operations waiting for a connection
        // give up after `connectionDeadline` (an outage reaches the API and workers as `unavailable`).
        configuration.options.connectTimeout = .seconds(3)
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(15))
        self.logger = logger
        // The pool's own log: its warning that a lease came before `run()` started (the
        // task below starts a moment after init returns; requests just wait) is noise.
        var background = logger
        background.logLevel = max(logger.logLevel, .error)
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        self.client = client
        clientTask = Task { await client.run() }
    }

    deinit { clientTask.cancel() }

    /// Closes the pool.
    public func close() async {
        clientTask.cancel()
        await clientTask.value
    }

    // MARK: Plumbing

    /// How long an operation may wait for a pooled connection before it is `unavailable`.
    /// (The pool itself keeps waiting requests for 60 s while it cannot connect.)
    static let connectionDeadline: Duration = .seconds(5)

    /// Runs `body` on a pooled connection outside a transaction.
    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await withConnection(body)
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Runs `body` in a transaction (READ COMMITTED) and commits it, or rolls back on any error.
    func write<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = logger
        do {
            return try await withConnection { connection in
                try await connection.run("BEGIN", logger: logger)
                do {
                    let value = try await body(connection)
                    try await connection.run("COMMIT", logger: logger)
                    return value
                } catch {
                    try? await connection.run("ROLLBACK", logger: logger)
                    throw error
                }
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Leases a connection for `body`, giving up with `unavailable` if none comes within
    /// ``connectionDeadline``; once `body` runs, it runs to its end.
    private func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let client = client
        let leased = LeaseFlag()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await client.withConnection { connection in
                    leased.value.store(true, ordering: .relaxed)
                    return try await body(connection)
                }
            }
            group.addTask {
                try await Task.sleep(for: Self.connectionDeadline)
                if leased.value.load(ordering: .relaxed) { return nil }
                throw SyncStoreError.unavailable("The database cannot be reached.")
            }
            while let next = try await group.next() {
                if let value = next {
                    group.cancelAll()
                    return value
                }
            }
            throw CancellationError()
        }
    }

    static func mapped(_ error: any Error) -> any Error {
        if error is SyncStoreError { return error }
        if isPostgresConnectivityError(error) { return SyncStoreError.unavailable("The database cannot be reached.") }
        return error
    }

    static func isUniqueViolation(_ error: any Error) -> Bool { (error as? PSQLError)?.sqlState == "23505" }

    /// One direct login with the store's settings, to tell at once what retrying cannot mend:
    /// a wrong password or user, or a database that does not exist (the pool would retry them
    /// until its deadline and report only that the database cannot be reached). A server
    /// that does not answer is not an error here: the pool's deadline reports it.
    public static func checkLogin(url: String, timeout: Duration = .seconds(5), logger: Logger) async throws {
        let configuration = try PostgresURL.connectionConfiguration(url)
        do {
            let connection = try await withDeadline(timeout, onTimeout: { SyncStoreError.unavailable("no answer") }) {
                try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            }
            try? await connection.close()
        } catch let error as PSQLError where error.code == .server {
            let state = error.serverInfo?[.sqlState] ?? ""
            let user = configuration.username, database = configuration.database ?? ""
            switch state {
            case "28P01":
                throw PostgresLoginError(description: "password authentication failed for user \"\(user)\" (check the password in the URL)")
            case "28000":
                throw PostgresLoginError(description: "the server refuses user \"\(user)\" (an unknown user, or one pg_hba.conf does not admit)")
            case "3D000":
                throw PostgresLoginError(description: "database \"\(database)\" does not exist (create it, or name another in the URL)")
            default:
                return
            }
        } catch {
            return
        }
    }

    public func migrate() async throws {
        let logger = logger
        try await write { connection in try await PostgresSchema.migrate(connection, logger: logger) }
    }

    public func ping() async throws {
        let logger = logger
        try await read { connection in try await connection.run("SELECT 1", logger: logger) }
    }

    public func schemaVersion() async throws -> Int {
        let logger = logger
        return try await read { connection in
            let exists = try await connection.one("SELECT to_regclass('tributary_schema') IS NOT NULL AS e", logger: logger)?.bool("e") ?? false
            guard exists else { return 0 }
            return try await connection.one("SELECT COALESCE(MAX(version), 0)::int8 AS v FROM tributary_schema", logger: logger)?.int("v") ?? 0
        }
    }

    // MARK: Sources

    public func createSource(_ source: Source) async throws -> Source {
        let logger = logger
        do {
            try await write { connection in
                try await connection.run("""
                    INSERT INTO sources (id, name, kind, config, schedule_every_seconds, priority, retry, rate_limit,
                        min_trigger_interval_seconds, state, created_at, updated_at)
                    VALUES (\(source.id), \(source.name), \(source.kind), \(StoreRows.json(source.config)),
                        \(source.schedule?.everySeconds), \(source.priority), \(StoreRows.json(source.retry)),
                        \(source.rateLimit.map(StoreRows.json)), \(source.minTriggerIntervalSeconds), \(StoreRows.json(source.state)),
                        \(source.createdAt.timeIntervalSince1970), \(source.updatedAt.timeIntervalSince1970))
                    """, logger: logger)
            }
        } catch where Self.isUniqueViolation(error) {
            throw SyncStoreError.nameTaken(source.name)
        }
        return source
    }

    public func source(idOrName: String) async throws -> Source? {
        let logger = logger
        return try await read { connection in try await Self.source(connection, idOrName: idOrName, logger: logger) }
    }

    static func source(_ connection: PostgresConnection, idOrName: String, logger: Logger) async throws -> Source? {
        try await connection.one(
            "SELECT * FROM sources WHERE id = \(idOrName) OR name = \(idOrName) ORDER BY (id = \(idOrName)) DESC LIMIT 1",
            logger: logger
        ).map { try StoreRows.source($0) }
    }

    public func listSources(limit: Int, after: String?) async throws -> [Source] {
        let logger = logger
        return try await read { connection in
            try await connection.all("SELECT * FROM sources WHERE id > \(after ?? "") ORDER BY id LIMIT \(limit)", logger: logger)
                .map { try StoreRows.source($0) }
        }
    }

    public func summary(sourceID: String) async throws -> SourceSyncSummary {
        let logger = logger
        return try await read { connection in
            let latestID = try await connection.one(
                "SELECT id FROM syncs WHERE source_id = \(sourceID) ORDER BY id DESC LIMIT 1", logger: logger
            ).map { try $0.string("id") }
            let finishedID = try await connection.one(
                "SELECT id FROM syncs WHERE source_id = \(sourceID) AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1",
                logger: logger
            ).map { try $0.string("id") }
            let lastCompleted = try await connection.one(
                "SELECT MAX(finished_at) AS t FROM syncs WHERE source_id = \(sourceID) AND status = 'completed'", logger: logger
            ).flatMap { try $0.optionalDouble("t") }
            var latest: Sync?
            var latestFinished: Sync?
            if let latestID { latest = try await Self.sync(connection, id: latestID, logger: logger) }
            if let finishedID { latestFinished = try await Self.sync(connection, id: finishedID, logger: logger) }
            return SourceSyncSummary(latest: latest, latestFinished: latestFinished, lastCompletedAt: StoreRows.date(lastCompleted))
        }
    }

    public func updateSource(_ source: Source) async throws -> Source {
        let logger = logger
        do {
            let changed = try await write { connection in
                try await connection.all("""
                    UPDATE sources SET name = \(source.name), kind = \(source.kind), config = \(StoreRows.json(source.config)),
                        schedule_every_seconds = \(source.schedule?.everySeconds), priority = \(source.priority),
                        retry = \(StoreRows.json(source.retry)), rate_limit = \(source.rateLimit.map(StoreRows.json)),
                        min_trigger_interval_seconds = \(source.minTriggerIntervalSeconds),
                        updated_at = \(source.updatedAt.timeIntervalSince1970)
                    WHERE id = \(source.id) RETURNING id
                    """, logger: logger).count
            }
            guard changed == 1 else { throw SyncStoreError.notFound("source \(source.id)") }
        } catch where Self.isUniqueViolation(error) {
            throw SyncStoreError.nameTaken(source.name)
        }
        guard let updated = try await self.source(idOrName: source.id) else { throw SyncStoreError.notFound("source \(source.id)") }
        return updated
    }

    public func deleteSource(id: String) async throws {
        let logger = logger
        try await write { connection in
            guard let seq = try await connection.one("SELECT seq FROM sources WHERE id = \(id) FOR UPDATE", logger: logger)
                .map({ try $0.int("seq") }) else { throw SyncStoreError.notFound("source \(id)") }
            if let active = try await connection.one(
                "SELECT id FROM syncs WHERE status IN (\(unescaped: PostgresSchema.activeList)) AND source_id = \(id)",
                logger: logger) {
                throw SyncStoreError.sourceInUse(activeSyncID: try active.string("id"))
            }
            try await connection.run("DELETE FROM records WHERE source_seq = \(seq)", logger: logger)
            try await connection.run("DELETE FROM sources WHERE id = \(id)", logger: logger)
        }
    }

    // MARK: Syncs

    public func enqueue(_ request: EnqueueRequest) async throws -> EnqueueOutcome {
        let logger = logger
        return try await write { connection in
            guard let sourceRow = try await connection.one(
                "SELECT * FROM sources WHERE id = \(request.sourceID) FOR UPDATE", logger: logger) else {
                throw SyncStoreError.notFound("source \(request.sourceID)")
            }
            let source = try StoreRows.source(sourceRow)
            let now = request.now.timeIntervalSince1970
            if let key = request.idempotencyKey,
               let row = try await connection.one(
                "SELECT fingerprint, sync_id FROM idempotency_keys WHERE source_id = \(source.id) AND key = \(key)", logger: logger) {
                guard try row.string("fingerprint") == request.requestFingerprint else { throw SyncStoreError.idempotencyKeyReused }
                guard let sync = try await Self.sync(connection, id: try row.string("sync_id"), logger: logger) else {
                    throw SyncStoreError.notFound("sync")
                }
                return .replayed(sync)
            }
            if let conflict = try await Self.activeSyncConflict(connection, sourceID: source.id, logger: logger) { throw conflict }
            if source.minTriggerIntervalSeconds > 0, let last = try sourceRow.optionalDouble("last_queued_at"),
               now - last < source.minTriggerIntervalSeconds {
                throw SyncStoreError.rateLimited(retryAfterSeconds: source.minTriggerIntervalSeconds - (now - last))
            }
            let id = try await Self.insertSync(
                connection, source: source, mode: request.mode, priority: request.priority, trigger: request.trigger,
                now: request.now, logger: logger)
            if let key = request.idempotencyKey {
                try await connection.run("""
                    INSERT INTO idempotency_keys (source_id, key, fingerprint, sync_id, created_at)
                    VALUES (\(source.id), \(key), \(request.requestFingerprint), \(id), \(now))
                    """, logger: logger)
            }
            try await Self.notify("wake", connection, logger: logger)
            guard let sync = try await Self.sync(connection, id: id, logger: logger) else { throw SyncStoreError.notFound("sync \(id)") }
            return .created(sync)
        }
    }

    /// `syncAlreadyActive` naming the source's active sync, if it has one.
    static func activeSyncConflict(_ connection: PostgresConnection, sourceID: String, logger: Logger) async throws -> SyncStoreError? {
        guard let active = try await connection.one(
            "SELECT id, status FROM syncs WHERE status IN (\(unescaped: PostgresSchema.activeList)) AND source_id = \(sourceID)",
            logger: logger) else { return nil }
        return .syncAlreadyActive(activeSyncID: try active.string("id"), status: SyncStatus(rawValue: try active.string("status")) ?? .queued)
    }

    /// Inserts a queued sync and stamps the source's `last_queued_at`. The partial unique
    /// index decides: `ON CONFLICT DO NOTHING` returns no row when the source already has
    /// an active sync, which becomes `syncAlreadyActive` (no aborted transaction).
    static func insertSync(
        _ connection: PostgresConnection, source: Source, mode: SyncMode, priority: Int, trigger: SyncTrigger, now: Date, logger: Logger
    ) async throws -> String {
        let id = Identifier.make("syn", now: now)
        let t = now.timeIntervalSince1970
        let inserted = try await connection.one("""
            INSERT INTO syncs (id, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at)
            VALUES (\(id), \(source.id), 'queued', \(mode.rawValue), \(priority), \(trigger.rawValue), \(source.retry.maxAttempts), \(t), \(t))
            ON CONFLICT DO NOTHING RETURNING id
            """, logger: logger)
        guard inserted != nil else {
            throw try await activeSyncConflict(connection, sourceID: source.id, logger: logger)
                ?? SyncStoreError.invalidState(current: .queued, message: "The sync could not be queued; try again.")
        }
        try await connection.run("UPDATE sources SET last_queued_at = \(t) WHERE id = \(source.id)", logger: logger)
        return id
    }

    /// Sends a notification to every listening node when the transaction commits.
    static func notify(_ payload: String, _ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.run("SELECT pg_notify(\(channel), \(payload))", logger: logger)
    }

    public func enqueueDueSchedules(now: Date) async throws -> [String] {
        let logger = logger
        let t = now.timeIntervalSince1970
        return try await write { connection in
            let due = try await connection.all("""
                SELECT * FROM sources
                WHERE schedule_every_seconds IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM syncs WHERE syncs.source_id = sources.id
                                  AND syncs.status IN (\(unescaped: PostgresSchema.activeList)))
                  AND (last_queued_at IS NULL OR last_queued_at + schedule_every_seconds <= \(t))
                FOR UPDATE SKIP LOCKED
                """, logger: logger).map { try StoreRows.source($0) }
            var ids: [String] = []
            for source in due {
                do {
                    ids.append(try await Self.insertSync(
                        connection, source: source, mode: source.defaultMode, priority: source.priority, trigger: .schedule,
                        now: now, logger: logger))
                } catch SyncStoreError.syncAlreadyActive {
                    continue
                }
            }
            if !ids.isEmpty { try await Self.notify("wake", connection, logger: logger) }
            return ids
        }
    }

    public func sync(id: String) async throws -> Sync? {
        let logger = logger
        return try await read { connection in try await Self.sync(connection, id: id, logger: logger) }
    }

    static func sync(_ connection: PostgresConnection, id: String, logger: Logger) async throws -> Sync? {
        guard let row = try await connection.one("SELECT * FROM syncs WHERE id = \(id)", logger: logger) else { return nil }
        let attempts = try await connection.all("SELECT * FROM sync_attempts WHERE sync_id = \(id) ORDER BY number", logger: logger)
            .map { try StoreRows.attempt($0) }
        return try StoreRows.sync(row, attempts: attempts)
    }

    public func listSyncs(_ filter: SyncFilter, limit: Int, before: String?) async throws -> [Sync] {
        let logger = logger
        var clauses: [String] = []
        var binds = PostgresBindings()
        func bind(_ value: some PostgresThrowingDynamicTypeEncodable) throws -> String {
            try binds.append(value)
            return "$\(binds.count)"
        }
        if let before { clauses.append("id < \(try bind(before))") }
        if let sourceID = filter.sourceID { clauses.append("source_id = \(try bind(sourceID))") }
        if !filter.statuses.isEmpty { clauses.append("status = ANY(\(try bind(filter.statuses.map(\.rawValue))))") }
        if let since = filter.since { clauses.append("queued_at >= \(try bind(since.timeIntervalSince1970))") }
        if let until = filter.until { clauses.append("queued_at < \(try bind(until.timeIntervalSince1970))") }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        let query = PostgresQuery(unsafeSQL: "SELECT * FROM syncs \(whereClause) ORDER BY id DESC LIMIT \(try bind(limit))", binds: binds)
        return try await read { connection in
            let rows = try await connection.all(query, logger: logger)
            guard !rows.isEmpty else { return [] }
            let ids = try rows.map { try $0.string("id") }
            var attempts: [String: [SyncAttempt]] = [:]
            for row in try await connection.all(
                "SELECT * FROM sync_attempts WHERE sync_id = ANY(\(ids)) ORDER BY sync_id, number", logger: logger) {
                attempts[try row.string("sync_id"), default: []].append(try StoreRows.attempt(row))
            }
            return try rows.map { try StoreRows.sync($0, attempts: attempts[try $0.string("id")] ?? []) }
        }
    }

    public func requestCancel(syncID: String, now: Date) async throws -> Sync {
        let logger = logger
        let t = now.timeIntervalSince1970
        return try await write { connection in
            guard let row = try await connection.one("SELECT * FROM syncs WHERE id = \(syncID) FOR UPDATE", logger: logger) else {
                throw SyncStoreError.notFound("sync \(syncID)")
            }
            let status = SyncStatus(rawValue: try row.string("status")) ?? .failed
            switch status {
            case .cancelled:
                break
            case .completed, .failed:
                throw SyncStoreError.invalidState(current: status, message: "A \(status.rawValue) sync cannot be cancelled.")
            case .queued, .retrying:
                try StoreRows.checked(from: status, to: .cancelled)
                try await connection.run("""
                    UPDATE syncs SET status = 'cancelled', finished_at = \(t), cancel_requested = true, next_retry_at = NULL
                    WHERE id = \(syncID)
                    """, logger: logger)
            case .running:
                try await connection.run("UPDATE syncs SET cancel_requested = true WHERE id = \(syncID)", logger: logger)
                try await Self.notify("cancel:\(syncID)", connection, logger: logger)
            }
            guard let sync = try await Self.sync(connection, id: syncID, logger: logger) else { throw SyncStoreError.notFound("sync \(syncID)") }
            return sync
        }
    }

    public func retry(syncID: String, now: Date) async throws -> Sync {
        let logger = logger
        return try await write { connection in
            guard let row = try await connection.one("SELECT source_id, status FROM syncs WHERE id = \(syncID)", logger: logger) else {
                throw SyncStoreError.notFound("sync \(syncID)")
            }
            let sourceID = try row.string("source_id")
            // Lock the source first (as enqueue does), then re-read the sync under that lock.
            try await connection.run("SELECT 1 FROM sources WHERE id = \(sourceID) FOR UPDATE", logger: logger)
            let status = try await connection.one("SELECT status FROM syncs WHERE id = \(syncID) FOR UPDATE", logger: logger)
                .flatMap { SyncStatus(rawValue: try $0.string("status")) } ?? .failed
            guard SyncTransition.isAllowed(from: status, to: .queued), status.isTerminal else {
                throw SyncStoreError.invalidState(current: status, message: "Only failed or cancelled syncs can be retried.")
            }
            if let conflict = try await Self.activeSyncConflict(connection, sourceID: sourceID, logger: logger) { throw conflict }
            try await connection.run("""
                UPDATE syncs SET status = 'queued', trigger = 'retry', failed_attempts = 0, cancel_requested = false,
                    error = NULL, finished_at = NULL, next_retry_at = NULL, run_at = \(now.timeIntervalSince1970),
                    max_attempts = (SELECT (retry::jsonb->>'max_attempts')::int FROM sources WHERE sources.id = syncs.source_id)
                WHERE id = \(syncID)
                """, logger: logger)
            try await Self.notify("wake", connection, logger: logger)
            guard let sync = try await Self.sync(connection, id: syncID, logger: logger) else { throw SyncStoreError.notFound("sync \(syncID)") }
            return sync
        }
    }

    // MARK: Records

    public func records(sourceID: String, limit: Int, after: String?, includeDeleted: Bool) async throws -> [StoredRecord] {
        let logger = logger
        return try await read { connection in
            try await connection.all("""
                SELECT records.*, syncs.id AS sync_id FROM records LEFT JOIN syncs ON syncs.seq = records.sync_seq
                WHERE source_seq = (SELECT seq FROM sources WHERE id = \(sourceID)) AND key > \(after ?? "")
                  AND (\(includeDeleted) OR deleted_at IS NULL)
                ORDER BY key LIMIT \(limit)
                """, logger: logger).map { try StoreRows.record($0) }
        }
    }

    public func record(sourceID: String, key: String) async throws -> StoredRecord? {
        let logger = logger
        return try await read { connection in
            try await connection.one("""
                SELECT records.*, syncs.id AS sync_id FROM records LEFT JOIN syncs ON syncs.seq = records.sync_seq
                WHERE source_seq = (SELECT seq FROM sources WHERE id = \(sourceID)) AND key = \(key)
                """, logger: logger).map { try StoreRows.record($0) }
        }
    }

    public func recordErrors(syncID: String, limit: Int, after: Int64?) async throws -> [(id: Int64, error: RecordError)] {
        let logger = logger
        let rows = try await read { connection in
            try await connection.all(
                "SELECT * FROM record_errors WHERE sync_id = \(syncID) AND id > \(after ?? 0) ORDER BY id LIMIT \(limit)", logger: logger)
        }
        return try rows.map { try StoreRows.recordError($0) }
    }
}

/// Whether an operation got its connection (shared by the operation and its deadline).
private final class LeaseFlag: Sendable {
    let value = Atomic(false)
}

/// A login that cannot succeed however often it is tried: the wrong password, an unknown
/// user or database. Its description never contains the password.
public struct PostgresLoginError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
