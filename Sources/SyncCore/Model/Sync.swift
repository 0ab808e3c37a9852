import Foundation

/// Whether a sync reads only what changed since the saved cursor, or everything
/// (and then marks what it did not see as deleted).
public enum SyncMode: String, Sendable, Codable, CaseIterable {
    case incremental
    case full
}

/// What started a sync.
public enum SyncTrigger: String, Sendable, Codable, CaseIterable {
    case api
    case schedule
    case retry
    case cli
}

/// Counters of a sync, persisted at every checkpoint in the same transaction as the page's records.
public struct SyncProgress: Sendable, Codable, Equatable {
    public var pages: Int = 0
    public var recordsRead: Int = 0
    public var recordsCreated: Int = 0
    public var recordsUpdated: Int = 0
    public var recordsUnchanged: Int = 0
    public var recordsDeleted: Int = 0
    public var recordsFailed: Int = 0
    public var bytesRead: Int = 0
    public var checkpointAt: Date?

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case pages
        case recordsRead = "records_read"
        case recordsCreated = "records_created"
        case recordsUpdated = "records_updated"
        case recordsUnchanged = "records_unchanged"
        case recordsDeleted = "records_deleted"
        case recordsFailed = "records_failed"
        case bytesRead = "bytes_read"
        case checkpointAt = "checkpoint_at"
    }
}

/// The real counts of a finished sync across all its attempts.
public struct SyncResult: Sendable, Codable, Equatable {
    public var recordsRead: Int
    public var recordsCreated: Int
    public var recordsUpdated: Int
    public var recordsUnchanged: Int
    public var recordsDeleted: Int
    public var recordsFailed: Int
    public var pages: Int
    public var bytesRead: Int
    public var durationSeconds: Double
    public var recordsPerSecond: Double

    public init(progress p: SyncProgress, durationSeconds: Double) {
        recordsRead = p.recordsRead
        recordsCreated = p.recordsCreated
        recordsUpdated = p.recordsUpdated
        recordsUnchanged = p.recordsUnchanged
        recordsDeleted = p.recordsDeleted
        recordsFailed = p.recordsFailed
        pages = p.pages
        bytesRead = p.bytesRead
        self.durationSeconds = durationSeconds
        recordsPerSecond = durationSeconds > 0 ? Double(p.recordsRead) / durationSeconds : 0
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case recordsRead = "records_read"
        case recordsCreated = "records_created"
        case recordsUpdated = "records_updated"
        case recordsUnchanged = "records_unchanged"
        case recordsDeleted = "records_deleted"
        case recordsFailed = "records_failed"
        case pages
        case bytesRead = "bytes_read"
        case durationSeconds = "duration_seconds"
        case recordsPerSecond = "records_per_second"
    }
}

/// One attempt of a sync: a claim by a worker, until it finished, failed or was handed back.
public struct SyncAttempt: Sendable, Codable, Equatable {
    public var number: Int
    public var startedAt: Date
    public var finishedAt: Date?
    /// The status the sync moved to when this attempt ended (`running` while it runs).
    public var status: SyncStatus
    public var error: SyncError?
    public var node: String?

    public init(number: Int, startedAt: Date, finishedAt: Date?, status: SyncStatus, error: SyncError?, node: String?) {
        self.number = number
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.status = status
        self.error = error
        self.node = node
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case number
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case status, error, node
    }
}

/// The stretch of its source's change feed a sync's writes took (docs/api.md, "Change
/// feed"): `from` is the feed's head before its first change, `to` the head after its last.
/// Reading the feed after `from` up to `to` gives what the sync changed, as it stands now.
public struct SyncChanges: Sendable, Equatable {
    public var from: Int64
    public var to: Int64
    public init(from: Int64, to: Int64) {
        self.from = from
        self.to = to
    }
}

/// A sync job: one run of a source, from queued to a terminal status.
public struct Sync: Sendable, Equatable {
    public var id: String
    public var sourceID: String
    public var status: SyncStatus
    public var mode: SyncMode
    public var priority: Int
    public var trigger: SyncTrigger
    /// How many attempts have been started (claims by a worker).
    public var attempt: Int
    public var maxAttempts: Int
    /// Failed attempts that count against `maxAttempts` (reset by a manual retry).
    public var failedAttempts: Int
    public var queuedAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var nextRetryAt: Date?
    public var heartbeatAt: Date?
    public var cancelRequested: Bool
    public var progress: SyncProgress
    public var error: SyncError?
    public var attempts: [SyncAttempt]
    public var leaseOwner: String?
    public var leaseExpiresAt: Date?
    /// Where the next page starts; opaque to everything but the source kind.
    public var checkpoint: JSONValue?
    /// Seconds spent running, summed over attempts that ended.
    public var runSeconds: Double
    /// The change feed's stretch its writes took; `nil` while it changed no record.
    public var changes: SyncChanges?

    public init(
        id: String, sourceID: String, status: SyncStatus, mode: SyncMode, priority: Int, trigger: SyncTrigger,
        attempt: Int = 0, maxAttempts: Int, failedAttempts: Int = 0, queuedAt: Date, startedAt: Date? = nil,
        finishedAt: Date? = nil, nextRetryAt: Date? = nil, heartbeatAt: Date? = nil, cancelRequested: Bool = false,
        progress: SyncProgress = SyncProgress(), error: SyncError? = nil, attempts: [SyncAttempt] = [],
        leaseOwner: String? = nil, leaseExpiresAt: Date? = nil, checkpoint: JSONValue? = nil, runSeconds: Double = 0,
        changes: SyncChanges? = nil
    ) {
        self.id = id
        self.sourceID = sourceID
        self.status = status
        self.mode = mode
        self.priority = priority
        self.trigger = trigger
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.failedAttempts = failedAttempts
        self.queuedAt = queuedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.nextRetryAt = nextRetryAt
        self.heartbeatAt = heartbeatAt
        self.cancelRequested = cancelRequested
        self.progress = progress
        self.error = error
        self.attempts = attempts
        self.leaseOwner = leaseOwner
        self.leaseExpiresAt = leaseExpiresAt
        self.checkpoint = checkpoint
        self.runSeconds = runSeconds
        self.changes = changes
    }

    /// The real counts, once the sync is terminal; `nil` before.
    public var result: SyncResult? {
        guard status.isTerminal else { return nil }
        return SyncResult(progress: progress, durationSeconds: runSeconds)
    }
}
