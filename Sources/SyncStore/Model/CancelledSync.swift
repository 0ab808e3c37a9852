import Foundation

/// A sync a bulk cancel changed: ended at once (it was queued or retrying) or flagged for
/// the node running it.
public struct CancelledSync: Sendable, Equatable {
    public var id: String
    public var sourceID: String
    public var sourceKind: String?
    /// Ended by this call (queued or retrying); `false` when a running sync was flagged.
    public var ended: Bool
    /// When its last attempt started (a retrying sync ran before), for the duration metric.
    public var startedAt: Date?

    public init(id: String, sourceID: String, sourceKind: String?, ended: Bool, startedAt: Date?) {
        self.id = id
        self.sourceID = sourceID
        self.sourceKind = sourceKind
        self.ended = ended
        self.startedAt = startedAt
    }
}
