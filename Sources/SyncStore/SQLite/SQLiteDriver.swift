import Foundation
import GRDB
import GRDBSQLite
import SyncCore
import Synchronization

/// The embedded default database: one SQLite file in WAL mode.
///
/// Durability: `synchronous = NORMAL` in WAL mode. Every commit survives a crash of the
/// process (SIGKILL included); a power loss or OS crash may lose the last few commits, but
/// never tears one: a page's records, counters and checkpoint are lost or kept together,
/// so a resumed sync refetches that page and counts it once (invariant 2). `FULL` would
/// fsync every page for no gain in correctness.
///
/// One writer at a time: every write transaction is `BEGIN IMMEDIATE`, so the facts a rule
/// reads cannot change before its writes (row locks are PostgreSQL's answer to the same).
final class SQLiteDriver: StoreDriver {
    let pool: DatabasePool
    let path: String
    let events = EventBus()
    var dialect: SQLDialect { .sqlite }

    init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.foreignKeysEnabled = true
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        pool = try Self.openPool(path: path, configuration: config)
        var readerConfig = Configuration()
        readerConfig.readonly = true
        readerConfig.busyMode = .timeout(10)
        readerConfig.prepareDatabase { db in
            // A page cache of 8 MiB per reader (SQLite's default is 2 MiB): a change feed page
            // reads its records by change number, scattered over the records' key order.
            try db.execute(sql: "PRAGMA cache_size = -\(Self.readerCacheKiB)")
        }
        readers = try (0..<Self.readerCount).map { _ in try DatabaseQueue(path: path, configuration: readerConfig) }
    }

    /// Opens the writer pool, which turns the file to WAL. `PRAGMA journal_mode = WAL` needs
    /// the file's exclusive lock and SQLite answers SQLITE_BUSY at once, without calling the
    /// busy handler, while another process holds any lock: several processes opening one
    /// fresh file together (six `tributary migrate`s, a cluster's first start) failed one of
    /// them now and then. The open is retried for as long as the busy timeout would wait.
    static func openPool(path: String, configuration: Configuration, patience: Duration = .seconds(10)) throws -> DatabasePool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: patience)
        var pauseMilliseconds = 5
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && clock.now < deadline {
                Thread.sleep(forTimeInterval: Double(pauseMilliseconds) / 1000)
                pauseMilliseconds = min(pauseMilliseconds * 2, 200)
            }
        }
    }

    /// Read-only connections for ``read(_:)``, each with its own serial queue, taken in turn.
    /// GRDB's pooled async read hops three times per read (a semaphore actor, the reader's
    /// queue, back) plus a barrier; a queue of our own hops twice.
    private let readers: [DatabaseQueue]
    private let nextReader = Atomic<Int>(0)
    static let readerCount = 4
    static let readerCacheKiB = 8192

    func run() async {}

    func migrate() async throws {
        try await guarded { try await SQLiteSchema.migrate(self.pool) }
    }

    func schemaVersion() async throws -> Int {
        try await guarded { try await self.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 } }
    }

    // MARK: Statements

    /// One statement is its own snapshot; several share one: a deferred transaction begun
    /// and ended with cached statements (GRDB's isolated read, a savepoint per read, cost
    /// more than the reads). Reads run on the queue of one of ``readers``, never on the
    /// calling thread: run there, they held one of the two cooperative threads while SQLite
    /// worked and the p99 of `GET /v1/sources/{id}` went from 12–14 ms to 18–21 ms under
    /// `wrk -c32`; on our own queues it is 5–6 ms at 13,000 requests/s (docs/benchmarks.md).
    func read(_ statements: [StoreSQL]) async throws -> Rows {
        let reader = readers[nextReader.wrappingAdd(1, ordering: .relaxed).oldValue % readers.count]
        return try await guarded {
            try await withCheckedThrowingContinuation { continuation in
                reader.asyncUnsafeRead { connection in
                    continuation.resume(with: Result { try Self.read(statements, db: try connection.get()) })
                }
            }
        }
    }

    private static func read(_ statements: [StoreSQL], db: Database) throws -> Rows {
        if statements.count == 1 { return Rows(sets: [try fetch(db, statements[0])]) }
        try db.cachedStatement(sql: "BEGIN DEFERRED").execute()
        do {
            let rows = Rows(sets: try statements.map { try fetch(db, $0) })
            try db.cachedStatement(sql: "COMMIT").execute()
            return rows
        } catch {
            try? db.cachedStatement(sql: "ROLLBACK").execute()
            throw error
        }
    }

    func execute(_ statement: StoreSQL) async throws -> Rows {
        try await guarded { try await self.pool.write { db in Rows(sets: [try Self.fetch(db, statement)]) } }
    }

    func transact<Result: Sendable>(_ transaction: StoreTransaction<Result>) async throws -> Result {
        try await StoreTransaction<Result>.atMostTwice { rerun in
            let (result, events) = try await guarded {
                try await self.pool.write { db in try Self.run(transaction, db: db, rerun: rerun) }
            }
            self.events.publish(events)
            return result
        }
    }

    private static func run<Result>(_ transaction: StoreTransaction<Result>, db: Database, rerun: Bool) throws -> (Result, [StoreEvent]) {
        let facts = Rows(sets: try transaction.facts.map { try fetch(db, $0) })
        let decision = try transaction.decide(facts)
        var written: [[any StoreRow]] = []
        for write in decision.writes {
            do {
                written.append(try write.checked(try fetch(db, write.sql)))
            } catch let error as DatabaseError where isUniqueViolation(error) {
                throw write.uniqueViolation(error, rerun: rerun)
            }
        }
        let then = Rows(sets: try decision.then.map { try fetch(db, $0) })
        return (try decision.result(Rows(sets: written), then), decision.events)
    }

    static func isUniqueViolation(_ error: DatabaseError) -> Bool {
        error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE || error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY
    }

    /// Runs one statement through the connection's statement cache, binding and reading
    /// through SQLite's C API: GRDB's `StatementArguments` and generic `Row` decoding cost
    /// more than SQLite's own work on a page of records (docs/benchmarks.md).
    static func fetch(_ db: Database, _ sql: StoreSQL) throws -> [any StoreRow] {
        let (text, values) = sql.render(.sqlite)
        return try fetch(db, text: text, values: values)
    }

    /// ``fetch(_:_:)`` of SQLite text with `?` placeholders: every row read this way throws
    /// on a damaged value, naming the column (GRDB's `Row` subscripts trap).
    static func fetch(_ db: Database, text: String, values: [SQLValue]) throws -> [any StoreRow] {
        let statement = try db.cachedStatement(sql: text)
        let handle = statement.sqliteStatement
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        for (index, value) in zip(Int32(1)..., values) {
            let code = bind(value, to: handle, at: index)
            guard code == SQLITE_OK else { throw error(db, code: code, sql: text) }
        }
        var rows: [any StoreRow] = []
        var columns: SQLiteColumns?
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { break }
            guard code == SQLITE_ROW else {
                let failure = error(db, code: code, sql: text)
                sqlite3_reset(handle)
                throw failure
            }
            let known = columns ?? SQLiteColumns.of(text, statement)
            columns = known
            rows.append(SQLiteRow(handle, columns: known))
        }
        #if DEBUG
        SQLiteStatementAudit.sweep(db)
        #endif
        return rows
    }

    private static func bind(_ value: SQLValue, to handle: OpaquePointer, at index: Int32) -> Int32 {
        switch value {
        case .text(let s): sqlite3_bind_text(handle, index, s, Int32(clamping: s.utf8.count), SQLiteRecordWriter.transient)  // past SQLite's limit: SQLITE_TOOBIG
        case .int(let i): sqlite3_bind_int64(handle, index, i)
        case .double(let d): sqlite3_bind_double(handle, index, d)
        case .bool(let b): sqlite3_bind_int64(handle, index, b ? 1 : 0)
        case .bytes(let b): b.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32(clamping: $0.count), SQLiteRecordWriter.transient) }
        case .textArray: preconditionFailure("SQLite lists are expanded by StoreSQL.render")
        case .null: sqlite3_bind_null(handle, index)
        }
    }

    private static func error(_ db: Database, code: Int32, sql: String) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: sqlite3_extended_errcode(db.sqliteConnection)),
                      message: String(cString: sqlite3_errmsg(db.sqliteConnection)), sql: sql)
    }

    func listen(_ onEvent: @escaping @Sendable (StoreEvent) -> Void) async throws {
        await events.listen(onEvent)
    }

    // MARK: Errors

    /// Runs `body`, reporting SQLite's busy, locked and I/O errors as ``SyncStoreError/unavailable(_:)``:
    /// the API answers those with 503 and a `Retry-After`, everything else unexpected with 500.
    func guarded<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            if let reason = Self.unavailableReason(error) { throw SyncStoreError.unavailable(reason) }
            throw error
        }
    }

    static func unavailableReason(_ error: DatabaseError) -> String? {
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: "The database is busy."
        case .SQLITE_IOERR, .SQLITE_FULL, .SQLITE_CANTOPEN, .SQLITE_READONLY: "The database cannot be written."
        default: nil
        }
    }
}
