import Logging
import NIOCore
import PostgresNIO
import _ConnectionPoolModule

/// PostgresNIO rows read by the shared mapping of ``RowCoding``.
extension PostgresRandomAccessRow: StoreRow {
    func string(_ column: String) throws -> String { try self[column].decode(String.self) }
    func optionalString(_ column: String) throws -> String? { try self[column].decode(String?.self) }
    func int(_ column: String) throws -> Int { try self[column].decode(Int.self) }
    func optionalInt(_ column: String) throws -> Int? { try self[column].decode(Int?.self) }
    func double(_ column: String) throws -> Double { try self[column].decode(Double.self) }
    func optionalDouble(_ column: String) throws -> Double? { try self[column].decode(Double?.self) }
    func bool(_ column: String) throws -> Bool { try self[column].decode(Bool.self) }
    func bytes(_ column: String) throws -> [UInt8] { Array(try self[column].decode(ByteBuffer.self).readableBytesView) }
}

/// A row whose columns carry a prefix (`src_id`, `src_name`, …): a joined row read as
/// its second table, so one statement can return a sync and its source.
struct PrefixedRow<Base: StoreRow>: StoreRow {
    let base: Base
    let prefix: String
    func string(_ column: String) throws -> String { try base.string(prefix + column) }
    func optionalString(_ column: String) throws -> String? { try base.optionalString(prefix + column) }
    func int(_ column: String) throws -> Int { try base.int(prefix + column) }
    func optionalInt(_ column: String) throws -> Int? { try base.optionalInt(prefix + column) }
    func double(_ column: String) throws -> Double { try base.double(prefix + column) }
    func optionalDouble(_ column: String) throws -> Double? { try base.optionalDouble(prefix + column) }
    func bool(_ column: String) throws -> Bool { try base.bool(prefix + column) }
    func bytes(_ column: String) throws -> [UInt8] { try base.bytes(prefix + column) }
}

extension PostgresConnection {
    /// All rows of a query.
    func all(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRandomAccessRow] {
        var rows: [PostgresRandomAccessRow] = []
        for try await row in try await self.query(query, logger: logger) { rows.append(row.makeRandomAccess()) }
        return rows
    }

    /// The first row of a query, if any.
    func one(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRandomAccessRow? {
        try await all(query, logger: logger).first
    }

    /// Runs a statement and drains its rows.
    func run(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await self.query(query, logger: logger) {}
    }
}

extension PSQLError {
    /// The SQLSTATE the server sent, if it sent one.
    var sqlState: String? { serverInfo?[.sqlState] }
}

/// Whether `error` says the PostgreSQL server cannot be reached or is going away
/// (refused, reset, shutting down, starting up, too many connections), as opposed to
/// a bug in a statement. Such errors become ``SyncStoreError/unavailable(_:)``.
func isPostgresConnectivityError(_ error: any Error) -> Bool {
    if let error = error as? PSQLError {
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed,
             .sslUnsupported, .failedToAddSSLHandler:
            return true
        case .server:
            // 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now;
            // 53300: too many connections.
            guard let state = error.sqlState else { return false }
            return state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300"
        default:
            return false
        }
    }
    // The pool gives up waiting for a connection once connecting failed for longer than its connect timeout.
    if error is ConnectionPoolError { return true }
    if error is IOError || error is ChannelError { return true }
    return false
}
