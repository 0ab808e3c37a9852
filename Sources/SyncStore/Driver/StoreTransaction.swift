/// A transaction written once for every database: read the facts, decide, write.
///
/// GRDB runs a transaction as one synchronous closure, PostgresNIO as a sequence of
/// awaited statements; rules written over either would have to be written twice. So a
/// rule is a pure function: it receives the rows of `facts` (read inside the
/// transaction, with row locks on PostgreSQL) and returns a ``StoreDecision``: the
/// statements to write, the events to publish, and how to read the result. A driver runs
/// the whole of it in one transaction (``StoreDriver/transact(_:)``).
struct StoreTransaction<Result: Sendable>: Sendable {
    /// Read first, in order.
    var facts: [StoreSQL]
    /// What to do, given the facts. Throws to refuse (nothing is written).
    var decide: @Sendable (Rows) throws -> StoreDecision<Result>

    init(facts: [StoreSQL] = [], decide: @escaping @Sendable (Rows) throws -> StoreDecision<Result>) {
        self.facts = facts
        self.decide = decide
    }
}

/// What a rule decided.
struct StoreDecision<Result: Sendable>: Sendable {
    var writes: [StoreWrite]
    /// Published once the transaction commits.
    var events: [StoreEvent]
    /// Read after the writes, in the same transaction.
    var then: [StoreSQL]
    /// The result, from the rows the writes returned and the rows of `then`.
    var result: @Sendable (_ written: Rows, _ then: Rows) throws -> Result

    init(writes: [StoreWrite] = [], events: [StoreEvent] = [], then: [StoreSQL] = [],
         result: @escaping @Sendable (_ written: Rows, _ then: Rows) throws -> Result) {
        self.writes = writes
        self.events = events
        self.then = then
        self.result = result
    }

    /// Nothing to write: the answer is already known.
    static func answer(_ value: Result) -> StoreDecision {
        StoreDecision { _, _ in value }
    }
}

/// One statement of a decision.
struct StoreWrite: Sendable {
    var sql: StoreSQL
    /// Thrown (and the transaction rolled back) if the statement returns no row: the
    /// statement then says `RETURNING` something.
    var requireRow: SyncStoreError?
    /// What a unique-constraint violation means here.
    var onUniqueViolation: UniqueViolation

    init(_ sql: StoreSQL, requireRow: SyncStoreError? = nil, onUniqueViolation: UniqueViolation = .propagate) {
        self.sql = sql
        self.requireRow = requireRow
        self.onUniqueViolation = onUniqueViolation
    }
}

extension StoreWrite {
    /// The rows this write returned, or ``requireRow`` if it returned none.
    func checked(_ rows: [any StoreRow]) throws -> [any StoreRow] {
        if let error = requireRow, rows.isEmpty { throw error }
        return rows
    }

    /// What a unique-constraint violation of this write becomes, on either database: the
    /// only reading of ``onUniqueViolation``.
    func uniqueViolation(_ error: any Error, rerun: Bool) -> any Error {
        switch onUniqueViolation {
        case .propagate: error
        case .fail(let mapped): mapped
        case .rerun: rerun ? error : RunTransactionAgain()
        }
    }
}

/// Thrown out of a transaction (rolling it back) when a write's ``UniqueViolation/rerun`` applies.
struct RunTransactionAgain: Error {}

extension StoreTransaction {
    /// Runs a driver's one attempt at the transaction, and a second with `rerun` set if the
    /// first asked for it (``UniqueViolation/rerun``).
    static func atMostTwice<T>(_ attempt: (_ rerun: Bool) async throws -> T) async throws -> T {
        do {
            return try await attempt(false)
        } catch is RunTransactionAgain {
            return try await attempt(true)
        }
    }
}

enum UniqueViolation: Sendable {
    /// A bug: passed on as it is.
    case propagate
    /// Roll back and throw this error.
    case fail(SyncStoreError)
    /// Roll back and run the transaction again, once: its facts now show what got in first,
    /// and the rule answers with the right conflict.
    case rerun
}

/// The rows of several statements, in order.
struct Rows: @unchecked Sendable {  // rows are read once, by the transaction that fetched them
    var sets: [[any StoreRow]]

    subscript(_ index: Int) -> [any StoreRow] { sets[index] }
    /// The first row of the statement at `index`, if any.
    func first(_ index: Int) -> (any StoreRow)? { sets[index].first }
}
