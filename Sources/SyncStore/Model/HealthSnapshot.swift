import Foundation
import SyncCore

/// The queue and cluster as `/v1/health` sees them.
public struct HealthSnapshot: Sendable {
    public var queued: Int
    public var oldestQueuedAt: Date?
    public var running: Int
    /// Running syncs whose lease has expired (the rescuer has not taken them back yet).
    public var expiredLeases: Int
    public var nodes: [NodeInfo]
    /// Sources whose latest finished sync failed (``SourceHealth/failing``), at most 100.
    public var failingSources: [SourceRef]
    /// Scheduled sources with no completed sync within twice their interval (``SourceHealth/stale``), at most 100.
    public var staleSources: [SourceRef]
    public init(queued: Int, oldestQueuedAt: Date?, running: Int, expiredLeases: Int, nodes: [NodeInfo],
                failingSources: [SourceRef] = [], staleSources: [SourceRef] = []) {
        self.queued = queued
        self.oldestQueuedAt = oldestQueuedAt
        self.running = running
        self.expiredLeases = expiredLeases
        self.nodes = nodes
        self.failingSources = failingSources
        self.staleSources = staleSources
    }
}

/// A source named in a health report.
public struct SourceRef: Sendable, Equatable {
    public var id: String
    public var name: String
    public init(id: String, name: String) {
        self.id = id
        self.name = name
    }
}
