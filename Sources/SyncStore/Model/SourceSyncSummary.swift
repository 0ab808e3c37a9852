import Foundation
import SyncCore

/// What a source's syncs say about it: its latest sync, its latest finished one, its last success.
public struct SourceSyncSummary: Sendable {
    /// A sync as a summary names it: no attempts, errors or checkpoint.
    public struct SyncBrief: Sendable, Equatable {
        public var id: String
        public var status: SyncStatus
        public var mode: SyncMode
        public var queuedAt: Date
        public var startedAt: Date?
        public var finishedAt: Date?
        public var recordsRead: Int

        public init(id: String, status: SyncStatus, mode: SyncMode, queuedAt: Date, startedAt: Date?, finishedAt: Date?, recordsRead: Int) {
            self.id = id
            self.status = status
            self.mode = mode
            self.queuedAt = queuedAt
            self.startedAt = startedAt
            self.finishedAt = finishedAt
            self.recordsRead = recordsRead
        }
    }

    public var latest: SyncBrief?
    public var latestFinished: SyncBrief?
    public var lastCompletedAt: Date?
    /// Until when an upstream closed the source's request budget (docs/queue.md); `nil`: open.
    public var rateLimitedUntil: Date?
    /// The source's credential needs new secrets (docs/credentials.md).
    public var credentialNeedsReauth: Bool

    public init(latest: SyncBrief?, latestFinished: SyncBrief?, lastCompletedAt: Date?, rateLimitedUntil: Date? = nil,
                credentialNeedsReauth: Bool = false) {
        self.credentialNeedsReauth = credentialNeedsReauth
        self.rateLimitedUntil = rateLimitedUntil
        self.latest = latest
        self.latestFinished = latestFinished
        self.lastCompletedAt = lastCompletedAt
    }

    /// A source with no sync yet.
    public static let none = SourceSyncSummary(latest: nil, latestFinished: nil, lastCompletedAt: nil)

    public func health(schedule: Schedule?, now: Date) -> SourceHealth {
        if credentialNeedsReauth { return .needsReauth }
        return SourceHealth.evaluate(latestFinished: latestFinished?.status, lastCompletedAt: lastCompletedAt, schedule: schedule, now: now)
    }
}

/// A source with its summary, as the API shows it: read together by one statement.
public struct SourceView: Sendable {
    public var source: Source
    public var summary: SourceSyncSummary

    public init(source: Source, summary: SourceSyncSummary) {
        self.source = source
        self.summary = summary
    }

    /// The source and its summary, for a `let (source, summary) = …`.
    public var pair: (Source, SourceSyncSummary) { (source, summary) }
}
