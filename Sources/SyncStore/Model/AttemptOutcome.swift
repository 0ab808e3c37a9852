import Foundation
import SyncCore

/// How an attempt ended.
public enum AttemptOutcome: Sendable, Equatable {
    /// All pages committed; in `full` mode, unseen records are marked deleted.
    case completed
    /// A retryable error with attempts left: wait until `nextRetryAt`.
    case retrying(SyncError, nextRetryAt: Date)
    /// A permanent error, or attempts exhausted; `cause` is the attempt's own error when it
    /// differs from the sync's (the sync says `attempts_exhausted`, the attempt what went wrong).
    case failed(SyncError, cause: SyncError? = nil)
    /// The client's cancel took effect.
    case cancelled
    /// Handed back (graceful shutdown, a closed rate-limit key): queued again at its last
    /// checkpoint, to run from `runAt` (default: at once), not counted as a failure. The
    /// attempt is listed with `code`: `handed_back`, or `upstream_rate_limited` for a key the
    /// upstream closed (those are counted: see `SyncRunner`).
    case released(reason: String, runAt: Date? = nil, code: SyncError.Code = .handedBack)

    public var status: SyncStatus {
        switch self {
        case .completed: .completed
        case .retrying: .retrying
        case .failed: .failed
        case .cancelled: .cancelled
        case .released: .queued
        }
    }
}
