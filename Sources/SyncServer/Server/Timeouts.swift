import SyncCore

/// How long the server waits for what it does not control.
enum Timeouts {
    /// A check of the database (`/readyz`, `/v1/health`): a database that does not answer must
    /// not hang a health check while the pool waits for a connection.
    static let databaseCheckLimit: Duration = .seconds(2)

    static func databaseCheck<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withDeadline(databaseCheckLimit, onTimeout: { TimedOut() }, body)
    }
}

/// An operation that ran past its deadline.
struct TimedOut: Error {}
