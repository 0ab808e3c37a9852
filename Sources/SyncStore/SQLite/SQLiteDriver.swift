import Foundation
import GRDB
import SyncCore

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
        pool = try DatabasePool(path: path, configuration: config)
    }

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
    /// more than the reads). Reads stay on GRDB's reader threads: run on the calling thread
    /// instead, they saved two thread hops but held one of the two cooperative threads
    /// while SQLite worked, and the p99 of `GET /v1/sources/{id}` went from 12–14 ms to
    /// 18–21 ms under `wrk -c32` (docs/benchmarks.md).
    func read(_ statements: [SQL]) async throws -> Rows {
        try await guarded {
            try await self.pool.unsafeRead { db in
                if statements.count == 1 { return Rows(sets: [try Self.fetch(db, statements[0])]) }
                try db.cachedStatement(sql: "BEGIN DEFERRED").execute()
                do {
                    let rows = Rows(sets: try statements.map { try Self.fetch(db, $0) })
                    try db.cachedStatement(sql: "COMMIT").execute()
                    return rows
                } catch {
                    try? db.cachedStatement(sql: "ROLLBACK").execute()
                    throw error
                }
            }
        }
    }

    func execute(_ statement: SQL) async throws -> Rows {
        try await guarded { try await self.pool.write { db in Rows(sets: [try Self.fetch(db, statement)]) } }
    }

    func transact<Result: Sendable>(_ transaction: StoreTransaction<Result>) async throws -> Result {
        var rerun = false
        while true {
            do {
                let again = rerun
                let (result, events) = try await guarded {
                    try await self.pool.write { db in try Self.run(transaction, db: db, rerun: again) }
                }
                self.events.publish(events)
                return result
            } catch is RunAgain where !rerun {
                rerun = true
            }
        }
    }

    private struct RunAgain: Error {}

    private static func run<Result>(_ transaction: StoreTransaction<Result>, db: Database, rerun: Bool) throws -> (Result, [StoreEvent]) {
        let facts = Rows(sets: try transaction.facts.map { try fetch(db, $0) })
        let decision = try transaction.decide(facts)
        var written: [[any StoreRow]] = []
        for write in decision.writes {
            do {
                let rows = try fetch(db, write.sql)
                if let error = write.requireRow, rows.isEmpty { throw error }
                written.append(rows)
            } catch let error as DatabaseError where isUniqueViolation(error) {
                switch write.onUniqueViolation {
                case .propagate: throw error
                case .fail(let mapped): throw mapped
                case .rerun: if rerun { throw error } else { throw RunAgain() }
                }
            }
        }
        let then = Rows(sets: try decision.then.map { try fetch(db, $0) })
        return (try decision.result(Rows(sets: written), then), decision.events)
    }

    static func isUniqueViolation(_ error: DatabaseError) -> Bool {
        error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE || error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY
    }

    /// Runs one statement through the connection's statement cache.
    static func fetch(_ db: Database, _ sql: SQL) throws -> [any StoreRow] {
        let (text, values) = sql.render(.sqlite)
        let statement = try db.cachedStatement(sql: text)
        let rows = try Row.fetchAll(statement, arguments: StatementArguments(values.map(databaseValue)))
        #if DEBUG
        SQLiteStatementAudit.sweep(db)
        #endif
        guard !rows.isEmpty else { return [] }
        let columns = SQLiteColumns.of(text, statement)
        return rows.map { SQLiteRow(row: $0, columns: columns) }
    }

    static func databaseValue(_ value: SQLValue) -> DatabaseValue {
        switch value {
        case .text(let s): s.databaseValue
        case .int(let i): i.databaseValue
        case .double(let d): d.databaseValue
        case .bool(let b): b.databaseValue
        case .bytes(let b): Data(b).databaseValue
        case .textArray: preconditionFailure("SQLite lists are expanded by SQL.render")
        case .null: .null
        }
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
