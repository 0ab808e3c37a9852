/// The databases Tributary runs on.
public enum SQLDialect: Sendable {
    case sqlite
    case postgres

    /// The one way to pick a dialect's spelling of the same thing.
    func spelling<T>(sqlite: T, postgres: T) -> T {
        switch self {
        case .sqlite: sqlite
        case .postgres: postgres
        }
    }
}

/// A value bound to a statement parameter (never spliced into its text).
enum SQLValue: Sendable {
    case text(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case bytes([UInt8])
    case textArray([String])
    /// NULL of the given type (PostgreSQL types its parameters, even NULL ones).
    case null(SQLNullType)
}

enum SQLNullType: Sendable {
    case text, int, double, bool
}

/// A statement written once for both databases.
///
/// Interpolated values become parameters: `?` for SQLite, `$n` for PostgreSQL. The few
/// places where the dialects differ are spelled out at the spot with
/// `\(sqlite: …, postgres: …)`, so a reader sees both versions side by side; lists use
/// `\(in: values)`, rendered `IN (?, ?, …)` or `= ANY($n)`.
struct StoreSQL: Sendable, ExpressibleByStringInterpolation {
    enum Fragment: Sendable {
        case text(String)
        case value(SQLValue)
        case list([String])
        /// Vocabulary values (``StringInterpolation/appendInterpolation(_:)-(T)``): written
        /// into SQLite's text, bound on PostgreSQL; `list` renders `IN (…)` / `= ANY(…)`.
        case vocabulary([String], list: Bool)
        case dialect(sqlite: String, postgres: String)
    }

    var fragments: [Fragment]

    init(stringLiteral value: String) { fragments = [.text(value)] }
    init(stringInterpolation: StringInterpolation) { fragments = stringInterpolation.fragments }

    struct StringInterpolation: StringInterpolationProtocol {
        var fragments: [Fragment] = []
        init(literalCapacity: Int, interpolationCount: Int) { fragments.reserveCapacity(interpolationCount * 2 + 1) }

        mutating func appendLiteral(_ literal: String) { if !literal.isEmpty { fragments.append(.text(literal)) } }
        mutating func appendInterpolation(_ value: String?) { fragments.append(.value(value.map(SQLValue.text) ?? .null(.text))) }
        mutating func appendInterpolation(_ value: Int?) { fragments.append(.value(value.map { .int(Int64($0)) } ?? .null(.int))) }
        mutating func appendInterpolation(_ value: Int64?) { fragments.append(.value(value.map(SQLValue.int) ?? .null(.int))) }
        mutating func appendInterpolation(_ value: Double?) { fragments.append(.value(value.map(SQLValue.double) ?? .null(.double))) }
        mutating func appendInterpolation(_ value: Bool) { fragments.append(.value(.bool(value))) }
        /// A list for `column \(in: values)`: `IN (…)` on SQLite, `= ANY(…)` on PostgreSQL.
        mutating func appendInterpolation(in values: [String]) { fragments.append(.list(values)) }
        /// A value of one of SyncCore's vocabularies (a status, a mode). SQLite gets it
        /// written into the text: it prepares a statement again on every run when a bound
        /// value meets a partial index's condition (`status IN (…)`), which costs more than
        /// the run. PostgreSQL gets it bound: with the constant in the text, a cached generic
        /// plan of `WHERE id = $1 AND status = 'running'` walked a partial index of active
        /// syncs instead of the primary key (docs/benchmarks.md, queue throughput).
        mutating func appendInterpolation<T: RawRepresentable<String>>(_ value: T) {
            fragments.append(.vocabulary([SchemaVocabulary.word(value)], list: false))
        }
        /// `IN (…)` of vocabulary values, rendered like ``appendInterpolation(_:)-(T)``.
        mutating func appendInterpolation<T: RawRepresentable<String>>(in values: [T]) {
            fragments.append(.vocabulary(values.map(SchemaVocabulary.word), list: true))
        }
        /// Trusted SQL text (a column list, a constant), never a value from outside.
        mutating func appendInterpolation(raw text: String) { fragments.append(.text(text)) }
        /// Another statement's fragments, spliced in (a shared filter, say).
        mutating func appendInterpolation(sql: StoreSQL) { fragments.append(contentsOf: sql.fragments) }
        /// Text that differs between the dialects.
        mutating func appendInterpolation(sqlite: String, postgres: String) {
            fragments.append(.dialect(sqlite: sqlite, postgres: postgres))
        }
    }

    /// `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose write transactions hold the
    /// database's one write lock from their first statement (`BEGIN IMMEDIATE`).
    static let forUpdate = StoreSQL(fragments: [.dialect(sqlite: "", postgres: "FOR UPDATE")])
    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL (rows another node is writing are left to it).
    static let forUpdateSkipLocked = StoreSQL(fragments: [.dialect(sqlite: "", postgres: "FOR UPDATE SKIP LOCKED")])

    init(fragments: [Fragment]) { self.fragments = fragments }

    /// Joins statements' fragments with `separator` (for optional WHERE clauses).
    static func joined(_ parts: [StoreSQL], separator: String) -> StoreSQL {
        var fragments: [Fragment] = []
        for (index, part) in parts.enumerated() {
            if index > 0 { fragments.append(.text(separator)) }
            fragments.append(contentsOf: part.fragments)
        }
        return StoreSQL(fragments: fragments)
    }

    /// The text with placeholders, and the values in order, for `dialect`.
    func render(_ dialect: SQLDialect) -> (text: String, values: [SQLValue]) {
        var text = ""
        var values: [SQLValue] = []
        func placeholder() -> String { dialect.spelling(sqlite: "?", postgres: "$\(values.count)") }
        for fragment in fragments {
            switch fragment {
            case .text(let t):
                text += t
            case .value(let v):
                values.append(v)
                text += placeholder()
            case .list(let items):
                switch dialect {
                case .sqlite:
                    if items.isEmpty {
                        text += "IN (NULL)"
                    } else {
                        text += "IN ("
                        for (index, item) in items.enumerated() {
                            values.append(.text(item))
                            text += index == 0 ? "?" : ", ?"
                        }
                        text += ")"
                    }
                case .postgres:
                    values.append(.textArray(items))
                    text += "= ANY(\(placeholder()))"
                }
            case .vocabulary(let words, let list):
                switch (dialect, list) {
                case (.sqlite, false): text += SchemaVocabulary.quoted(words)
                case (.sqlite, true): text += words.isEmpty ? "IN (NULL)" : "IN (\(SchemaVocabulary.quoted(words)))"
                case (.postgres, false):
                    values.append(.text(words[0]))
                    text += placeholder()
                case (.postgres, true):
                    values.append(.textArray(words))
                    text += "= ANY(\(placeholder()))"
                }
            case .dialect(let sqlite, let postgres):
                text += dialect.spelling(sqlite: sqlite, postgres: postgres)
            }
        }
        return (text, values)
    }
}
