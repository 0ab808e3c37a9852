import GRDB

/// Whether `error` means the database is unreachable or overloaded (busy, locked, I/O,
/// disk full, cannot open) rather than a bug: the API answers those with 503
/// `unavailable` and a `Retry-After`, everything else unexpected with 500 `internal`.
public func databaseUnavailableReason(_ error: any Error) -> String? {
    guard let error = error as? DatabaseError else { return nil }
    switch error.resultCode {
    case .SQLITE_BUSY, .SQLITE_LOCKED: return "The database is busy."
    case .SQLITE_IOERR, .SQLITE_FULL, .SQLITE_CANTOPEN, .SQLITE_READONLY: return "The database cannot be written."
    default: return nil
    }
}
