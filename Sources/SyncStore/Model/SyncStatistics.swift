import Foundation
import SyncCore

/// What `GET /v1/stats` reports for a window of time, computed by the database.
///
/// Terminal counts, durations, record totals and rates cover the syncs that *finished*
/// within the window; `queued`, `running` and `retrying` and the queue are the present.
public struct SyncStatistics: Sendable, Equatable {
    /// Syncs by status: terminal ones finished within the window, the others as of now.
    public var counts: [SyncStatus: Int]
    /// Seconds from a sync's first start to its end (`finished_at - started_at`), over the
    /// completed syncs of the window: nearest-rank percentiles, `nil` without any.
    public var duration: Percentiles?
    /// Records read per second of running time (`records_read / run_seconds`), over the
    /// completed syncs of the window that ran for a measurable time.
    public var recordsPerSecond: Percentiles?
    /// Record counters summed over every sync that finished within the window.
    public var records: RecordTotals
    /// Syncs waiting in `queued` now, and when the one waiting longest was queued.
    public var queueDepth: Int
    public var oldestQueuedAt: Date?
    /// Sources with at least one sync finished within the window, most failures first.
    public var bySource: [SourceStatistics]

    public init(counts: [SyncStatus: Int], duration: Percentiles?, recordsPerSecond: Percentiles?, records: RecordTotals,
                queueDepth: Int, oldestQueuedAt: Date?, bySource: [SourceStatistics]) {
        self.counts = counts
        self.duration = duration
        self.recordsPerSecond = recordsPerSecond
        self.records = records
        self.queueDepth = queueDepth
        self.oldestQueuedAt = oldestQueuedAt
        self.bySource = bySource
    }

    /// Completed over completed + failed (cancelled syncs are a decision, not an outcome);
    /// `nil` when neither happened.
    public var successRate: Double? {
        let completed = counts[.completed] ?? 0, failed = counts[.failed] ?? 0
        return completed + failed == 0 ? nil : Double(completed) / Double(completed + failed)
    }

    /// Nearest-rank percentiles: p50 is the value at rank ⌈0.5·n⌉ of the sorted values,
    /// p95 at rank ⌈0.95·n⌉ (one rule on both databases, so both report the same figures).
    public struct Percentiles: Sendable, Equatable {
        public var p50: Double
        public var p95: Double
        public var max: Double
        public init(p50: Double, p95: Double, max: Double) {
            self.p50 = p50
            self.p95 = p95
            self.max = max
        }
    }

    public struct RecordTotals: Sendable, Equatable {
        public var read = 0, created = 0, updated = 0, unchanged = 0, deleted = 0, failed = 0
        public init(read: Int = 0, created: Int = 0, updated: Int = 0, unchanged: Int = 0, deleted: Int = 0, failed: Int = 0) {
            self.read = read
            self.created = created
            self.updated = updated
            self.unchanged = unchanged
            self.deleted = deleted
            self.failed = failed
        }
    }

    public struct SourceStatistics: Sendable, Equatable {
        public var source: SourceRef
        public var completed: Int
        public var failed: Int
        public var cancelled: Int
        /// The end of the source's latest completed sync, inside the window or not.
        public var lastSuccessAt: Date?
        public init(source: SourceRef, completed: Int, failed: Int, cancelled: Int, lastSuccessAt: Date?) {
            self.source = source
            self.completed = completed
            self.failed = failed
            self.cancelled = cancelled
            self.lastSuccessAt = lastSuccessAt
        }
    }
}

/// What pruning may delete: terminal syncs that finished before `now - olderThanSeconds`,
/// except the newest `keepLastPerSource` finished syncs of each source.
public struct RetentionPolicy: Sendable, Equatable {
    public var olderThanSeconds: Double
    public var keepLastPerSource: Int
    /// Syncs deleted per transaction: small, so claims and page commits never wait long.
    public var batchSize: Int

    /// 30 days, the newest 20 per source.
    public static let `default` = RetentionPolicy(olderThanSeconds: 30 * 86_400, keepLastPerSource: 20)

    public init(olderThanSeconds: Double, keepLastPerSource: Int, batchSize: Int = 200) {
        self.olderThanSeconds = olderThanSeconds
        self.keepLastPerSource = keepLastPerSource
        self.batchSize = batchSize
    }
}
