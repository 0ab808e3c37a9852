import Foundation
import Synchronization

/// Wakes the change feed's waiting readers of a source when a commit changed its records
/// (the store's `recordsChanged` events, from every node on PostgreSQL).
///
/// A reader registers before it reads the feed and waits only after: a commit between the
/// read and the wait has already fired its registration, so no wake-up is lost.
public final class ChangeSignal: Sendable {
    private struct Waiter {
        var fired = false
        var continuation: CheckedContinuation<Void, Never>?
    }

    private let waiters = Mutex<[String: [UUID: Waiter]]>([:])

    public init() {}

    /// Wakes every reader registered for the source.
    public func signal(sourceID: String) {
        let woken: [CheckedContinuation<Void, Never>] = waiters.withLock { all in
            guard var list = all[sourceID] else { return [] }
            var out: [CheckedContinuation<Void, Never>] = []
            for (id, var waiter) in list {
                waiter.fired = true
                if let continuation = waiter.continuation { out.append(continuation) }
                waiter.continuation = nil
                list[id] = waiter
            }
            all[sourceID] = list
            return out
        }
        for continuation in woken { continuation.resume() }
    }

    /// How many readers are registered (for tests and metrics).
    public var waiting: Int { waiters.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    /// A registration: signals from now on are kept until ``wait(_:sourceID:timeout:)``.
    public func register(sourceID: String) -> UUID {
        let id = UUID()
        waiters.withLock { $0[sourceID, default: [:]][id] = Waiter() }
        return id
    }

    /// Ends a registration (waking its wait, if any).
    public func unregister(_ id: UUID, sourceID: String) {
        let waiter = waiters.withLock { all -> Waiter? in
            let waiter = all[sourceID]?.removeValue(forKey: id)
            if all[sourceID]?.isEmpty == true { all[sourceID] = nil }
            return waiter
        }
        waiter?.continuation?.resume()
    }

    /// Waits until the source is signalled after the registration (or was already), the
    /// timeout passes or the task is cancelled; the registration is then ready for the
    /// next wait (its signal consumed).
    public func wait(_ id: UUID, sourceID: String, timeout: Duration) async {
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.fire(id, sourceID: sourceID)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = waiters.withLock { all -> Bool in
                    guard var waiter = all[sourceID]?[id], !waiter.fired else { return true }
                    waiter.continuation = continuation
                    all[sourceID]?[id] = waiter
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            fire(id, sourceID: sourceID)
        }
        waiters.withLock { all in all[sourceID]?[id]?.fired = false }
    }

    /// Ends a registration's current wait now (its reader is gone, say).
    public func wake(_ id: UUID, sourceID: String) { fire(id, sourceID: sourceID) }

    private func fire(_ id: UUID, sourceID: String) {
        let continuation = waiters.withLock { all -> CheckedContinuation<Void, Never>? in
            guard var waiter = all[sourceID]?[id] else { return nil }
            waiter.fired = true
            let continuation = waiter.continuation
            waiter.continuation = nil
            all[sourceID]?[id] = waiter
            return continuation
        }
        continuation?.resume()
    }
}
