import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// A result row copied out of SQLite's C API, read by column position: the names are
/// resolved once per statement (``SQLiteColumns``), not per value. A value of the wrong
/// type (a `NULL` where the schema promises a value) throws instead of trapping.
struct SQLiteRow: StoreRow {
    enum Value: Sendable {
        case null
        case int(Int64)
        case double(Double)
        case text(String)
        case blob([UInt8])
    }

    let values: [Value]
    let columns: SQLiteColumns

    init(_ handle: OpaquePointer, columns: SQLiteColumns) {
        self.columns = columns
        values = (0..<sqlite3_column_count(handle)).map { index in
            switch sqlite3_column_type(handle, index) {
            case SQLITE_INTEGER: .int(sqlite3_column_int64(handle, index))
            case SQLITE_FLOAT: .double(sqlite3_column_double(handle, index))
            case SQLITE_TEXT:
                .text(String(decoding: UnsafeBufferPointer(start: sqlite3_column_text(handle, index),
                                                           count: Int(sqlite3_column_bytes(handle, index))), as: UTF8.self))
            case SQLITE_BLOB:
                .blob(Array(UnsafeRawBufferPointer(start: sqlite3_column_blob(handle, index), count: Int(sqlite3_column_bytes(handle, index)))))
            default: .null
            }
        }
    }

    func value(_ column: String) throws -> Value {
        guard let index = columns.positions[column] else { throw MissingColumn(name: column) }
        return values[index]
    }

    func optionalString(_ column: String) throws -> String? {
        switch try value(column) {
        case .null: nil
        case .text(let s): s
        case .int(let i): String(i)
        case .double(let d): String(d)
        case .blob(let b): String(decoding: b, as: UTF8.self)
        }
    }

    func optionalInt(_ column: String) throws -> Int? {
        switch try value(column) {
        case .null: return nil
        case .int(let i): return Int(i)
        case .double(let d):
            guard let i = Int(exactly: d) else { throw WrongType(column: column, expected: "an integer") }
            return i
        case .text, .blob: throw WrongType(column: column, expected: "an integer")
        }
    }

    func optionalDouble(_ column: String) throws -> Double? {
        switch try value(column) {
        case .null: nil
        case .int(let i): Double(i)
        case .double(let d): d
        case .text, .blob: throw WrongType(column: column, expected: "a number")
        }
    }

    func string(_ column: String) throws -> String { try required(optionalString(column), column) }
    func int(_ column: String) throws -> Int { try required(optionalInt(column), column) }
    func double(_ column: String) throws -> Double { try required(optionalDouble(column), column) }
    func bool(_ column: String) throws -> Bool { try int(column) != 0 }
    func bytes(_ column: String) throws -> [UInt8] {
        switch try value(column) {
        case .blob(let b): b
        case .text(let s): Array(s.utf8)
        default: throw WrongType(column: column, expected: "bytes")
        }
    }

    private func required<T>(_ value: T?, _ column: String) throws -> T {
        guard let value else { throw WrongType(column: column, expected: "a value, not NULL") }
        return value
    }
}

/// A column held something its reader does not accept: a bug in a statement or a damaged file.
struct WrongType: Error, CustomStringConvertible {
    let column: String
    let expected: String
    var description: String { "column \(column) does not hold \(expected)" }
}

/// The positions of a statement's result columns by name (the first of a repeated name).
final class SQLiteColumns: Sendable {
    let positions: [String: Int]
    init(_ names: [String]) {
        var positions: [String: Int] = [:]
        for (index, name) in names.enumerated() where positions[name] == nil { positions[name] = index }
        self.positions = positions
    }

    /// The columns of the statement with this text, computed once per text (a few hundred
    /// texts exist; the cache forgets everything if it ever holds more than 1,024).
    static func of(_ text: String, _ statement: Statement) -> SQLiteColumns {
        if let known = known.withLock({ $0[text] }) { return known }
        let columns = SQLiteColumns(statement.columnNames)
        known.withLock { cache in
            if cache.count >= 1024 { cache.removeAll(keepingCapacity: true) }
            cache[text] = columns
        }
        return columns
    }

    private static let known = Mutex<[String: SQLiteColumns]>([:])
}

/// A statement read a column it does not return: a bug in the statement.
struct MissingColumn: Error, CustomStringConvertible {
    let name: String
    var description: String { "the statement returns no column \(name)" }
}
