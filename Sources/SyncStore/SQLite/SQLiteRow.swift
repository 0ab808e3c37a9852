import Foundation
import GRDB

/// GRDB rows read by the shared mapping of ``StoreRows``.
extension Row: StoreRow {
    func string(_ column: String) throws -> String { self[column] }
    func optionalString(_ column: String) throws -> String? { self[column] }
    func int(_ column: String) throws -> Int { self[column] }
    func double(_ column: String) throws -> Double { self[column] }
    func optionalDouble(_ column: String) throws -> Double? { self[column] }
    func bool(_ column: String) throws -> Bool { self[column] }
    func bytes(_ column: String) throws -> [UInt8] { [UInt8](self[column] as Data) }
}
