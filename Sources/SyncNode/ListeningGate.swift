import ServiceLifecycle
import Synchronization

/// Opens once the node's server listens. The engine's services wait behind it, so a node
/// that cannot bind its port (in use, refused) stops before any of them claims a sync,
/// delivers a webhook or schedules one: it used to claim first and then exit.
final class ListeningGate: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Bool, Never>])
        case open
        case closed
    }
    private let state = Mutex(State.waiting([]))

    /// The server listens: every waiter goes on.
    func open() { settle(.open) }

    /// The node stops before listening: every waiter gives up.
    func close() { settle(.closed) }

    private func settle(_ final: State) {
        let waiters: [CheckedContinuation<Bool, Never>] = state.withLock { state in
            guard case .waiting(let waiters) = state else { return [] }
            state = final
            return waiters
        }
        let opened = if case .open = final { true } else { false }
        for waiter in waiters { waiter.resume(returning: opened) }
    }

    /// Whether the gate opened; `false` once it was closed or the waiting task cancelled.
    func opened() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now: Bool? = state.withLock { state in
                    switch state {
                    case .open: return true
                    case .closed: return false
                    case .waiting(var waiters):
                        if Task.isCancelled { return false }
                        waiters.append(continuation)
                        state = .waiting(waiters)
                        return nil
                    }
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            close()
        }
    }
}

/// A service that starts once the gate opens, and not at all if the node stops first.
struct AfterListening: Service {
    let gate: ListeningGate
    let service: any Service

    func run() async throws {
        let opened = await withGracefulShutdownHandler {
            await gate.opened()
        } onGracefulShutdown: {
            gate.close()
        }
        guard opened else { return }
        try await service.run()
    }
}
