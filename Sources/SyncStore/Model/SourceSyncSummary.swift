import Foundation
import SyncCore

/// What a source's syncs say about it: its latest sync, its latest finished one, its last success.
public struct SourceSyncSummary: Sendable {
    public var latest: Sync?
    public var latestFinished: Sync?
    public var lastCompletedAt: Date?
    /// Until when an upstream closed the source's request budget (docs/queue.md); `nil`: open.
    public var rateLimitedUntil: Date?

    public init(latest: Sync?, latestFinished: Sync?, lastCompletedAt: Date?, rateLimitedUntil: Date? = nil) {
        self.rateLimitedUntil = rateLimitedUntil
        self.latest = latest
        self.latestFinished = latestFinished
        self.lastCompletedAt = lastCompletedAt
    }

    /// A source with no sync yet.
    public static let none = SourceSyncSummary(latest: nil, latestFinished: nil, lastCompletedAt: nil)

    public func health(schedule: Schedule?, now: Date) -> SourceHealth {
        SourceHealth.evaluate(latestFinished: latestFinished?.status, lastCompletedAt: lastCompletedAt, schedule: schedule, now: now)
    }
}
