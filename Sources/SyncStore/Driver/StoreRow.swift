/// A database row as the mapping (``RowCoding``) reads it. Both stores name their columns the
/// same way and keep times as seconds since 1970 (a double), so one mapping serves both:
/// a change to a domain type is made once, not once per driver.
protocol StoreRow {
    func string(_ column: String) throws -> String
    func optionalString(_ column: String) throws -> String?
    func int(_ column: String) throws -> Int
    func optionalInt(_ column: String) throws -> Int?
    func double(_ column: String) throws -> Double
    func optionalDouble(_ column: String) throws -> Double?
    func bool(_ column: String) throws -> Bool
    func bytes(_ column: String) throws -> [UInt8]
    /// Whether the row has `column` at all (a sync snapshot written before a column existed lacks it).
    func has(_ column: String) -> Bool
}

extension StoreRow {
    func has(_ column: String) -> Bool { true }
}
