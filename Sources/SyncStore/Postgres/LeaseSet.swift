import Synchronization

/// A set of lease tokens shared by a driver's operations, bounded: past `capacity` it starts
/// over (a forgotten token costs one more try of the fast path, not correctness).
final class LeaseSet: Sendable {
    private let tokens = Mutex<Set<String>>([])
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func contains(_ token: String) -> Bool { tokens.withLock { $0.contains(token) } }

    func insert(_ token: String) {
        tokens.withLock {
            if $0.count >= capacity { $0.removeAll() }
            $0.insert(token)
        }
    }

    func remove(_ token: String) { _ = tokens.withLock { $0.remove(token) } }
}
