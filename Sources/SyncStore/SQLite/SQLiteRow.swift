import Foundation
import GRDB
import Synchronization

/// A GRDB row read by column position: the names are resolved once per statement
/// (``SQLiteColumns``), not per value (GRDB's name lookup is case-insensitive and
/// lowercases the name on every call, which showed in read profiles).
struct SQLiteRow: StoreRow {
    let row: Row
    let columns: SQLiteColumns

    func index(_ column: String) throws -> Int {
        guard let index = columns.positions[column] else { throw MissingColumn(name: column) }
        return index
    }

    func string(_ column: String) throws -> String { row[try index(column)] }
    func optionalString(_ column: String) throws -> String? { row[try index(column)] }
    func int(_ column: String) throws -> Int { row[try index(column)] }
    func optionalInt(_ column: String) throws -> Int? { row[try index(column)] }
    func double(_ column: String) throws -> Double { row[try index(column)] }
    func optionalDouble(_ column: String) throws -> Double? { row[try index(column)] }
    func bool(_ column: String) throws -> Bool { row[try index(column)] }
    func bytes(_ column: String) throws -> [UInt8] { [UInt8](row[try index(column)] as Data) }
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

/// GRDB rows read by name, for the hot paths that read a row or two.
extension Row: StoreRow {
    func string(_ column: String) throws -> String { self[column] }
    func optionalString(_ column: String) throws -> String? { self[column] }
    func int(_ column: String) throws -> Int { self[column] }
    func optionalInt(_ column: String) throws -> Int? { self[column] }
    func double(_ column: String) throws -> Double { self[column] }
    func optionalDouble(_ column: String) throws -> Double? { self[column] }
    func bool(_ column: String) throws -> Bool { self[column] }
    func bytes(_ column: String) throws -> [UInt8] { [UInt8](self[column] as Data) }
}
