import Foundation
import SyncCore

/// What a database must provide for ``DatabaseStore``: connections, a schema, statements
/// run in one snapshot or one transaction, events, and the hot paths of the workers.
///
/// A driver decides nothing: the rules (who may enqueue, what a cancel does, which
/// transition is legal, the error texts) live in ``DatabaseStore`` and `Rules/`, written
/// once. What stays per database is what must be tuned per database: the claim, the page
/// commit, the completion and the end of an attempt, each one statement or one short
/// transaction shaped by what that database does fast (docs/architecture.md).
protocol StoreDriver: Sendable {
    var dialect: SQLDialect { get }

    /// Keeps the connections going until cancelled (PostgreSQL's pool); returns at once if
    /// the database needs nothing running.
    func run() async
    func migrate() async throws
    func schemaVersion() async throws -> Int

    /// Runs the statements in order on one connection and returns their rows.
    func read(_ statements: [StoreSQL]) async throws -> Rows
    /// Runs one statement in a transaction of its own (writes allowed) and returns its rows.
    func execute(_ statement: StoreSQL) async throws -> Rows
    /// Runs a read-decide-write transaction.
    func transact<Result: Sendable>(_ transaction: StoreTransaction<Result>) async throws -> Result
    /// Delivers the events published by ``transact(_:)`` and the hot paths, until cancelled.
    func listen(_ onEvent: @escaping @Sendable (StoreEvent) -> Void) async throws

    // The hot paths of the workers.
    func claimBatch(owner: String, leaseSeconds: Double, now: Date, limit: Int) async throws -> [ClaimedSync]
    func commitPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress
    func completeWithFinalPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> Sync
    func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync
}
