import Logging
import NIOCore
import PostgresNIO

/// A shared ``StoreSQL`` statement run as a named prepared statement, so PostgreSQL parses and
/// plans it once per connection instead of on every call (planning was the larger share of
/// the hot statements' time, docs/benchmarks.md).
///
/// PostgresNIO names a prepared statement by its type (`static var name`, `sql`), which a
/// statement built at run time does not have. The type's static properties therefore read
/// a task-local set around the one `execute` call that uses them (PostgresNIO reads them
/// synchronously there, and again only in that call's error path). The name is a hash of the
/// text: one text, one statement per connection; a dialect `IN` list renders as `= ANY($n)`,
/// so the set of texts stays small.
struct PostgresSharedStatement: PostgresPreparedStatement {
    struct Current: Sendable {
        var name: String
        var sql: String
        var types: [PostgresDataType]
    }

    @TaskLocal static var current: Current?

    static var name: String { current?.name ?? "tributary_unset" }
    static var sql: String { current?.sql ?? "" }
    static var bindingDataTypes: [PostgresDataType] { current?.types ?? [] }

    typealias Row = PostgresRow
    let bindings: PostgresBindings
    func makeBindings() throws -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }

    /// The rows of `statement` on `connection`.
    static func rows(_ statement: StoreSQL, on connection: PostgresConnection, logger: Logger) async throws -> [PostgresRandomAccessRow] {
        let (text, values) = statement.render(.postgres)
        let bindings = try PostgresDriver.bindings(values)
        let current = Current(name: "tributary_s_" + String(fnv1a(text), radix: 16), sql: text, types: values.map(type))
        return try await $current.withValue(current) {
            var rows: [PostgresRandomAccessRow] = []
            for try await row in try await connection.execute(PostgresSharedStatement(bindings: bindings), logger: logger) {
                rows.append(row.makeRandomAccess())
            }
            return rows
        }
    }

    static func type(_ value: SQLValue) -> PostgresDataType {
        switch value {
        case .text, .null(.text): .text
        case .int, .null(.int): .int8
        case .double, .null(.double): .float8
        case .bool, .null(.bool): .bool
        case .bytes: .bytea
        case .textArray: .textArray
        }
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}

extension PostgresDriver {
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
}
