import SyncCore

/// What ending an attempt writes to its sync and its attempt row, whichever the database.
struct FinishChange {
    var finishedAt: Double?
    var nextRetryAt: Double?
    var runAt: Double
    var error: SyncError?
    var attemptError: SyncError?
    var failedDelta = 0
    /// Records marked deleted by a completed full sync (the store fills it in).
    var deleted = 0

    init(outcome: AttemptOutcome, runAt: Double, now t: Double) {
        self.runAt = runAt
        var cause: SyncError?
        switch outcome {
        case .completed, .cancelled:
            finishedAt = t
        case .retrying(let e, let next):
            error = e
            failedDelta = 1
            // Nothing from outside can store a time that a reader cannot format or wait for.
            let at = Timestamp.clamped(next).timeIntervalSince1970
            nextRetryAt = at
            self.runAt = at
        case .failed(let e, let c):
            error = e
            cause = c
            failedDelta = 1
            finishedAt = t
        case .released(_, let at, _):
            self.runAt = at.map { Timestamp.clamped($0).timeIntervalSince1970 } ?? t
        }
        attemptError = cause ?? error
        if case .released(let reason, _, let code) = outcome { attemptError = SyncError(code, reason, retryable: true) }
    }
}

/// What upserting a page did to the record store: the counters both record writers return.
/// A key this sync already wrote on an earlier page (or earlier on the page) is in none of
/// them: a record counts once per sync.
struct UpsertCounts {
    var created = 0
    var updated = 0
    var unchanged = 0
    /// The page's records read for the first time in this sync.
    var read: Int { created + updated + unchanged }
}
