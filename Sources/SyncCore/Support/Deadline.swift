/// Runs `operation`, and throws `onTimeout()` if it has not finished within `limit`; the
/// operation's task is cancelled then (an HTTP request in flight is aborted, a wait for a
/// pooled connection given up).
///
/// Written here because no kept library offers a deadline on an arbitrary async operation:
/// AsyncHTTPClient's deadline covers only the response head, and the pools wait as long as
/// they are configured to.
public func withDeadline<T: Sendable>(
    _ limit: Duration, onTimeout: @escaping @Sendable () -> any Error, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        // The first to finish decides; cancelling the other ends it.
        let first = try await group.next()!
        group.cancelAll()
        guard let result = first else { throw onTimeout() }
        return result
    }
}
