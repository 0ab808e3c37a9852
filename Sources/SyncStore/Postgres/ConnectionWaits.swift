import Synchronization

/// The deadlines of operations still waiting for a pooled connection, watched by one task
/// (``watch()``, run with the pool) instead of a timer per operation: a timer armed and
/// cancelled around every statement, in a task group of two, cost PostgreSQL reads 10–20 %
/// of their throughput (docs/benchmarks.md).
final class ConnectionWaits: Sendable {
    /// One operation's wait: `waiting` until the pool hands it a connection (`leased`) or
    /// its deadline passes first (`expired`: its task is cancelled and it answers `unavailable`).
    final class Wait: Sendable {
        enum State: UInt8 { case waiting, leased, expired }
        let deadline: ContinuousClock.Instant
        private let state = Atomic<UInt8>(State.waiting.rawValue)
        private let task = Mutex<Task<Void, Never>?>(nil)

        init(deadline: ContinuousClock.Instant) { self.deadline = deadline }

        /// Called with the connection in hand: `false` if the deadline passed first (the
        /// operation must not run; its caller was told the database cannot be reached).
        func markLeased() -> Bool { transition(to: .leased) }

        var expired: Bool { state.load(ordering: .acquiring) == State.expired.rawValue }

        /// The task to cancel if the deadline passes; cancelled at once if it already has.
        func attach(_ cancel: Task<Void, Never>) {
            task.withLock { $0 = cancel }
            if expired { cancel.cancel() }
        }

        fileprivate func expire() {
            guard transition(to: .expired) else { return }
            task.withLock { $0 }?.cancel()
        }

        private func transition(to new: State) -> Bool {
            state.compareExchange(expected: State.waiting.rawValue, desired: new.rawValue, ordering: .acquiringAndReleasing).exchanged
        }
    }

    private let waits = Mutex<[ObjectIdentifier: Wait]>([:])
    let limit: Duration

    init(limit: Duration) { self.limit = limit }

    func arm() -> Wait {
        let wait = Wait(deadline: .now + limit)
        waits.withLock { $0[ObjectIdentifier(wait)] = wait }
        return wait
    }

    func disarm(_ wait: Wait) { waits.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(wait)) } }

    /// Expires the waits whose deadline passed, ten times a second, until cancelled.
    func watch() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            let now = ContinuousClock.now
            let due = waits.withLock { waits in waits.values.filter { $0.deadline <= now } }
            for wait in due { wait.expire() }
        }
    }
}
