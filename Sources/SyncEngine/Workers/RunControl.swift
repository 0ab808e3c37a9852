import Synchronization

/// Why a running sync must stop before its source is exhausted.
public enum StopReason: Sendable, Equatable {
    /// A client cancelled it: finish as `cancelled`.
    case cancelRequested
    /// The node is shutting down: hand it back as `queued` at its last checkpoint.
    case shutdown
    /// Another node took the lease: write nothing more.
    case leaseLost
}

/// The stop switch of one running sync, shared by its page loop, its monitor and
/// whoever asks it to stop (a cancel the store's events carry from any node, graceful
/// shutdown, the monitor finding the lease lost).
final class RunControl: Sendable {
    private let reason = Mutex<StopReason?>(nil)
    let wake = WakeUpSignal()

    /// Records the first reason to stop and wakes the monitor; later reasons do not override it.
    func stop(_ r: StopReason) {
        reason.withLock { if $0 == nil { $0 = r } }
        wake.signal()
    }

    var stopReason: StopReason? { reason.withLock { $0 } }
}
