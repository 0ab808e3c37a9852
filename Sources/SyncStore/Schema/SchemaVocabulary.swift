import SyncCore

/// The lists the schemas' CHECK constraints allow, from `SyncCore`'s enums (one vocabulary).
enum SchemaVocabulary {
    static func list<T: RawRepresentable<String>>(_ values: [T]) -> String {
        quoted(values.map(word))
    }

    /// Checked words (``word(_:)``) as SQL string literals: `'a', 'b'`.
    static func quoted(_ words: [String]) -> String {
        words.map { "'\($0)'" }.joined(separator: ", ")
    }

    /// A value's raw text, checked to be a plain word (it is written into statements).
    static func word<T: RawRepresentable<String>>(_ value: T) -> String {
        precondition(value.rawValue.allSatisfy { $0.isASCII && ($0.isLowercase || $0 == "_") }, "not a vocabulary word: \(value.rawValue)")
        return value.rawValue
    }
    static let statuses = list(SyncStatus.allCases)
    static let active = list(SyncStatus.active)
    static let runnable = list(StoreRules.runnableStatuses)
    static let terminal = list(SyncStatus.terminal)
    /// The condition of the partial indexes on finished syncs, spelled once: SQLite uses such
    /// an index only when the query repeats its condition, so the indexes and the queries
    /// that read them share this text.
    static let isTerminal = "status IN (\(terminal))"
    /// The statuses a webhook can be told about (the outbox trigger of both schemas).
    static let notified = list(WebhookTarget.statuses)
    static let modes = list(SyncMode.allCases)
    static let triggers = list(SyncTrigger.allCases)
}
