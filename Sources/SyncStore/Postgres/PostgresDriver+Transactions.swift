import Logging
import PostgresNIO

/// The interpreter of ``StoreTransaction`` on PostgreSQL: the facts, the rule's decision, its
/// writes, `NOTIFY` of its events (delivered at commit) and the reads after, in one transaction.
extension PostgresDriver {
    func transact<Result: Sendable>(_ transaction: StoreTransaction<Result>) async throws -> Result {
        try await StoreTransaction<Result>.atMostTwice { rerun in try await transactOnce(transaction, rerun: rerun) }
    }

    private func transactOnce<Result: Sendable>(_ transaction: StoreTransaction<Result>, rerun: Bool) async throws -> Result {
        let logger = logger
        return try await inTransaction { connection in
            var facts: [[any StoreRow]] = []
            for statement in transaction.facts { facts.append(try await PostgresSharedStatement.rows(statement, on: connection, logger: logger)) }
            let decision = try transaction.decide(Rows(sets: facts))
            var written: [[any StoreRow]] = []
            for write in decision.writes {
                do {
                    written.append(try write.checked(try await PostgresSharedStatement.rows(write.sql, on: connection, logger: logger)))
                } catch where Self.isUniqueViolation(error) {
                    throw write.uniqueViolation(error, rerun: rerun)
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
}
