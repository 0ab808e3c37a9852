import ServiceLifecycle
import Synchronization

/// Set once graceful shutdown begins, so `/readyz` answers 503 while the node drains.
final class ShutdownFlag: Sendable {
    private let state = Mutex(false)
    var value: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}

struct ShutdownWatcher: Service {
    let flag: ShutdownFlag
    let events: SyncEventHub
    func run() async throws {
        try? await gracefulShutdown()
        flag.set()
        // Open event streams end now: the server waits for every response before it stops.
        events.shutdown()
    }
}
