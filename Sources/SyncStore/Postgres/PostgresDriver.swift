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
    let connectionWaits = ConnectionWaits(limit: PostgresDriver.connectionDeadline)
    let logger: Logger
    let maximumConnections: Int
    /// Attempts (by lease token) that met a key their source already holds: their pages go
    /// through the upsert from then on; the others insert (``PostgresStatements/CommitNewPage``).
    let upsertingLeases = LeaseSet(capacity: 4096)
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
            group.addTask { await self.connectionWaits.watch() }
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

    func read(_ statements: [StoreSQL]) async throws -> Rows {
        let logger = logger
        return try await onConnection { connection in
            var sets: [[any StoreRow]] = []
            for statement in statements { sets.append(try await PostgresSharedStatement.rows(statement, on: connection, logger: logger)) }
            return Rows(sets: sets)
        }
    }

    func execute(_ statement: StoreSQL) async throws -> Rows {
        let logger = logger
        return try await onConnection { connection in Rows(sets: [try await PostgresSharedStatement.rows(statement, on: connection, logger: logger)]) }
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


}
