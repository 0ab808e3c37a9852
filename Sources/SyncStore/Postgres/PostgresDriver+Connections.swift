import Foundation
import Logging
import PostgresNIO
import Synchronization

/// How an operation gets a pooled connection: a deadline on the wait, transactions, the
/// reconnect after a stale prepared plan, and the errors that mean the database is unreachable.
extension PostgresDriver {
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
        let wait = connectionWaits.arm()
        defer { connectionWaits.disarm(wait) }
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
        // 22021 character_not_in_repertoire (U+0000 in text), 22P05 untranslatable_character
        // (`\u0000` in jsonb): the value, not the database, is at fault.
        if let state = (error as? PSQLError)?.serverInfo?[.sqlState], state == "22021" || state == "22P05" {
            return SyncStoreError.unstorable("holds a character the database cannot store (U+0000)")
        }
        return error
    }

    static func isUniqueViolation(_ error: any Error) -> Bool { (error as? PSQLError)?.sqlState == "23505" }
}
