import Foundation
import SyncCore

/// A `tributary serve` process sharing the database.
public struct NodeInfo: Sendable, Equatable {
    public var id: String
    public var role: String
    public var workers: Int
    public var startedAt: Date
    public var heartbeatAt: Date
    /// A node whose heartbeat is older than this (three missed heartbeats) is reported stale.
    public static let staleAfterSeconds: Double = 15

    public init(id: String, role: String, workers: Int, startedAt: Date, heartbeatAt: Date) {
        self.id = id
        self.role = role
        self.workers = workers
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
    }
}
