import Foundation
import Logging
import NIOCore
import PostgresNIO
import SyncCore
import Synchronization

/// The scale-out database: many `tributary serve` processes on one PostgreSQL database.
///
/// What SQLite gets from its single writer, PostgreSQL gets from row locks: claims use
/// `FOR UPDATE SKIP LOCKED`, every write to a source's syncs first locks the source row
/// (the rules read it `FOR UPDATE`), so an enqueue, a retry, a schedule and a delete of one
/// source are serialised and an idempotency key replays instead of racing; the partial
/// unique index still refuses a second active sync. Events travel by `NOTIFY` on
/// ``PostgresStatements/channel``, sent inside the transaction that causes them.
final class PostgresDriver: StoreDriver {
    let client: PostgresClient
    /// Each operation's wait for a connection ends after ``connectionDeadline``.
    let deadlines = LeaseDeadlines(limit: PostgresDriver.connectionDeadline)
    let logger: Logger
    let maximumConnections: Int
    var dialect: SQLDialect { .postgres }

    /// The pool does not connect until ``run()`` runs (a node's service group runs it;
    /// ``DatabaseStore/start()`` runs it for commands and tests).
    init(url: String, maximumConnections: Int, logger: Logger) throws {
        var configuration = try PostgresURL.configuration(url)
        configuration.options.maximumConnections = maximumConnections
        self.maximumConnections = maximumConnections
        // One connection attempt gives up after this long; operations waiting for a connection
        // give up after `connectionDeadline` (an outage reaches the API and workers as `unavailable`).
        configuration.options.connectTimeout = .seconds(3)
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(15))
        self.logger = logger
        // The pool's own log: its warning that a lease came before `run()` started is noise.
        var background = logger
        background.logLevel = max(logger.logLevel, .error)
        client = PostgresClient(configuration: configuration, backgroundLogger: background)
    }

    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            group.addTask { await self.deadlines.watch() }
        }
    }

    func migrate() async throws {
        let logger = logger
        try await inTransaction { connection in try await PostgresSchema.migrate(connection, logger: logger) }
    }

    func schemaVersion() async throws -> Int {
        let logger = logger
        return try await onConnection { connection in
            let exists = try await connection.one("SELECT to_regclass('tributary_schema') IS NOT NULL AS e", logger: logger)?.bool("e") ?? false
            guard exists else { return 0 }
            return try await connection.one("SELECT COALESCE(MAX(version), 0)::int8 AS v FROM tributary_schema", logger: logger)?.int("v") ?? 0
        }
    }

    // MARK: Statements

    func read(_ statements: [SQL]) async throws -> Rows {
        let logger = logger
        return try await onConnection { connection in
            var sets: [[any StoreRow]] = []
            for statement in statements { sets.append(try await PostgresSharedStatement.rows(statement, on: connection, logger: logger)) }
            return Rows(sets: sets)
        }
    }

    func execute(_ statement: SQL) async throws -> Rows {
        let logger = logger
        return try await onConnection { connection in Rows(sets: [try await PostgresSharedStatement.rows(statement, on: connection, logger: logger)]) }
    }

    func transact<Result: Sendable>(_ transaction: StoreTransaction<Result>) async throws -> Result {
        do {
            return try await transactOnce(transaction, rerun: false)
        } catch is RunAgain {
            return try await transactOnce(transaction, rerun: true)
        }
    }

    private struct RunAgain: Error {}

    private func transactOnce<Result: Sendable>(_ transaction: StoreTransaction<Result>, rerun: Bool) async throws -> Result {
        let logger = logger
        return try await inTransaction { connection in
            var facts: [[any StoreRow]] = []
            for statement in transaction.facts { facts.append(try await PostgresSharedStatement.rows(statement, on: connection, logger: logger)) }
            let decision = try transaction.decide(Rows(sets: facts))
            var written: [[any StoreRow]] = []
            for write in decision.writes {
                do {
                    let rows = try await PostgresSharedStatement.rows(write.sql, on: connection, logger: logger)
                    if let error = write.requireRow, rows.isEmpty { throw error }
                    written.append(rows)
                } catch where Self.isUniqueViolation(error) {
                    switch write.onUniqueViolation {
                    case .propagate: throw error
                    case .fail(let mapped): throw mapped
                    case .rerun: if rerun { throw error } else { throw RunAgain() }
                    }
                }
            }
            for event in decision.events {
                try await connection.run("SELECT pg_notify(\(PostgresStatements.channel), \(event.payload))", logger: logger)
            }
            var then: [[any StoreRow]] = []
            for statement in decision.then { then.append(try await PostgresSharedStatement.rows(statement, on: connection, logger: logger)) }
            return try decision.result(Rows(sets: written), Rows(sets: then))
        }
    }

    /// The typed binds of a shared statement's values.
    static func bindings(_ values: [SQLValue]) throws -> PostgresBindings {
        var binds = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .text(let s): binds.append(s)
            case .int(let i): binds.append(i)
            case .double(let d): binds.append(d)
            case .bool(let b): binds.append(b)
            case .bytes(let b): binds.append(ByteBuffer(bytes: b))
            case .textArray(let a): binds.append(a)
            case .null(.text): binds.append(String?.none)
            case .null(.int): binds.append(Int64?.none)
            case .null(.double): binds.append(Double?.none)
            case .null(.bool): binds.append(Bool?.none)
            }
        }
        return binds
    }

    /// LISTENs on a pooled connection held for as long as this runs.
    func listen(_ onEvent: @escaping @Sendable (StoreEvent) -> Void) async throws {
        do {
            try await client.withConnection { connection in
                try await connection.listen(on: PostgresStatements.channel) { notifications in
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

    // MARK: Plumbing

    /// How long an operation may wait for a pooled connection before it is `unavailable`.
    /// (The pool itself keeps waiting requests for 60 s while it cannot connect.)
    static let connectionDeadline: Duration = .seconds(5)

    /// Runs `body` on a pooled connection outside a transaction.
    func onConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await withConnection(body)
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Runs `body` in a transaction (READ COMMITTED) and commits it, or rolls back on any error.
    func inTransaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = logger
        do {
            return try await withConnection { connection in
                do {
                    return try await connection.withTransaction(logger: logger) { connection in try await body(connection) }
                } catch let error as PostgresTransactionError {
                    throw error.closureError ?? error.commitError ?? error.beginError ?? error
                }
            }
        } catch {
            throw Self.mapped(error)
        }
    }

    /// Leases a connection for `body`, giving up with `unavailable` if none comes within
    /// ``connectionDeadline``; once `body` runs, it runs to its end.
    ///
    /// A migration by a newer node that adds a column to a table leaves this node's
    /// prepared `SELECT *` statements failing with "cached plan must not change result type"
    /// (SQLSTATE 0A000) on every connection that prepared them. Such a connection is closed
    /// (the pool opens a fresh one, which prepares the statements anew) and `body` runs
    /// again: it failed before writing anything (a transaction rolls back), and rows
    /// are read by column name, so the added column is simply not read. This keeps a node
    /// of this version running through the next rolling upgrade.
    private func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        // Each failure closes one stale connection; at most every pooled one can be stale.
        var tries = 0
        while true {
            do {
                return try await leasedConnection(body)
            } catch let error as PSQLError where Self.isStalePlan(error) && tries <= maximumConnections {
                tries += 1
                logger.notice("a prepared statement's result changed (a newer node migrated the schema); reconnecting")
            }
        }
    }

    /// SQLSTATE 0A000 "cached plan must not change result type": the connection that saw it
    /// is closed before the error goes on, so no later request gets it.
    static func isStalePlan(_ error: PSQLError) -> Bool {
        error.sqlState == "0A000" && (error.serverInfo?[.message]?.contains("cached plan") ?? false)
    }

    private func leasedConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let client = client
        let wait = deadlines.arm()
        defer { deadlines.disarm(wait) }
        let result = Mutex<Result<T, any Error>?>(nil)
        // The operation runs in a task of its own so that the deadline cancels its wait for a
        // connection, not the caller.
        let operation = Task {
            do {
                let value = try await client.withConnection { connection in
                    guard wait.markLeased() else { throw CancellationError() }
                    do {
                        return try await body(connection)
                    } catch let error as PSQLError where Self.isStalePlan(error) {
                        // The pool must not hand this connection out again.
                        try? await connection.close()
                        throw error
                    }
                }
                result.withLock { $0 = .success(value) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
        }
        wait.attach(operation)
        await withTaskCancellationHandler { await operation.value } onCancel: { operation.cancel() }
        if wait.expired { throw SyncStoreError.unavailable("The database cannot be reached.") }
        guard let outcome = result.withLock({ $0 }) else { throw CancellationError() }
        return try outcome.get()
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
    static func checkLogin(url: String, timeout: Duration = .seconds(5), logger: Logger) async throws {
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

}

/// A login that cannot succeed however often it is tried: the wrong password, an unknown
/// user or database. Its description never contains the password.
public struct PostgresLoginError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
