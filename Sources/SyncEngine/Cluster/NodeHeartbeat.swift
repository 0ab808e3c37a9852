import Foundation
import Logging
import ServiceLifecycle
import SyncStore

/// Keeps this node's row in the nodes table fresh, so `/v1/health` can list the cluster
/// and tell a live node from a stale one; removes the row on graceful shutdown.
public struct NodeHeartbeat: Service {
    let store: any ClusterRegistry
    let node: NodeInfo
    let interval: Duration
    let logger: Logger

    /// How often a node heartbeats.
    public static let defaultInterval: Duration = .seconds(5)
    /// A node whose heartbeat is older than this (three missed heartbeats) is reported stale.
    public static let staleAfterSeconds = NodeInfo.staleAfterSeconds

    public init(store: any ClusterRegistry, node: NodeInfo, interval: Duration = NodeHeartbeat.defaultInterval,
                logger: Logger = Logger(label: "tributary.node")) {
        self.store = store
        self.node = node
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        // A (re)started node claims again, whatever an earlier process of its name was told.
        do { try await store.registerNode(NodeInfo(id: node.id, role: node.role, workers: node.workers, startedAt: Date(), heartbeatAt: Date())) }
        catch { logger.warning("node registration failed: \(error)") }
        await runPeriodically(every: interval, logger: logger, level: .warning, failure: "node heartbeat failed") {
            try await store.heartbeatNode(node, now: Date())
        }
        try? await store.removeNode(id: node.id)
    }
}
