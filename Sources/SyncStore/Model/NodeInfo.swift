import Foundation
import SyncCore

/// A `tributary serve` process sharing the database.
public struct NodeInfo: Sendable, Equatable {
    public var id: String
    public var role: String
    public var workers: Int
    public var startedAt: Date
    public var heartbeatAt: Date
    /// Told to stop claiming (`POST /v1/nodes/{id}/drain`); its running syncs finish. A
    /// restarted node claims again.
    public var draining: Bool
    /// A node whose heartbeat is older than this (three missed heartbeats) is reported stale.
    public static let staleAfterSeconds: Double = 15

    public init(id: String, role: String, workers: Int, startedAt: Date, heartbeatAt: Date, draining: Bool = false) {
        self.draining = draining
        self.id = id
        self.role = role
        self.workers = workers
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
    }
}
