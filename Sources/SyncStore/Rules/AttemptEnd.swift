import SyncCore

/// How an attempt ends, decided once from its outcome (like River's `JobSetStateIfRunning`
/// parameters): the columns to write, whether a full sync's unseen records go, whether the
/// workers are woken. Both drivers only write it, with the SQL below.
struct AttemptEnd: Sendable {
    var status: SyncStatus
    var finishedAt: Double?
    var nextRetryAt: Double?
    /// When the sync may run again; `nil` keeps the stored `run_at`.
    var runAt: Double?
    var error: SyncError?
    /// What the attempt's own row says went wrong.
    var attemptError: SyncError?
    var failedDelta = 0
    /// A completed sync marks its source's records it did not see deleted (full mode only:
    /// the statement checks the sync's mode, ``unseenRecords(mode:sourceSeq:syncSeq:)``).
    var deletesUnseen = false
    /// Runnable again at once (handed back): the workers are woken when it is written.
    var wakes = false

    init(outcome: AttemptOutcome, now t: Double) {
        status = outcome.status
        var cause: SyncError?
        switch outcome {
        case .completed:
            finishedAt = t
            deletesUnseen = true
        case .cancelled:
            finishedAt = t
        case .retrying(let e, let next):
            error = e
            failedDelta = 1
            // Nothing from outside can store a time that a reader cannot format or wait for.
            let at = Timestamp.clamped(next).timeIntervalSince1970
            nextRetryAt = at
            runAt = at
        case .failed(let e, let c):
            error = e
            cause = c
            failedDelta = 1
            finishedAt = t
        case .released(let reason, let at, let code):
            runAt = at.map { Timestamp.clamped($0).timeIntervalSince1970 } ?? t
            cause = SyncError(code, reason, retryable: true)
            wakes = true
        }
        attemptError = cause ?? error
    }

    // MARK: The SQL both drivers write it with, over their own parameter spellings

    /// The records of a sync's source it did not see (to mark deleted): `mode` is the sync's.
    static func unseenRecords(mode: String, sourceSeq: String, syncSeq: String) -> String {
        "\(mode) = 'full' AND records.source_seq = \(sourceSeq) AND records.deleted_at IS NULL AND records.seen_sync_seq < \(syncSeq)"
    }

    /// What marking a record deleted writes.
    static func markedDeleted(now: String, syncSeq: String) -> String {
        "deleted_at = \(now), updated_at = \(now), sync_seq = \(syncSeq)"
    }

    /// The sync row's `SET` list: the end's columns, the deleted records counted, the
    /// attempt's running time added, the lease cleared. `runningSince` is the row's value
    /// as the statement sees it.
    static func syncColumns(_ dialect: SQLDialect, status: String, finishedAt: String, nextRetryAt: String, runAt: String,
                            error: String, failedDelta: String, deleted: String, now: String, runningSince: String) -> String {
        let greatest = dialect.spelling(sqlite: "MAX", postgres: "GREATEST")
        return """
            status = \(status), finished_at = \(finishedAt), next_retry_at = \(nextRetryAt), run_at = COALESCE(\(runAt), run_at),
                error = \(error), failed_attempts = failed_attempts + \(failedDelta), records_deleted = records_deleted + \(deleted),
                run_seconds = run_seconds + \(greatest)(0, \(now) - COALESCE(\(runningSince), \(now))),
                \(leaseCleared)
            """
    }

    /// A sync no worker holds any more: what every end of an attempt writes, the rescuer's too.
    static let leaseCleared = "running_since = NULL, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL"

    /// The attempt row's `SET` list.
    static func attemptColumns(now: String, status: String, error: String) -> String {
        "finished_at = \(now), status = \(status), error = \(error)"
    }
}
