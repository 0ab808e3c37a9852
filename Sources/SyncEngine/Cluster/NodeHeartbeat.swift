import Foundation
import Logging
import ServiceLifecycle
import SyncStore

/// Keeps this node's row in the nodes table fresh, so `/v1/health` can list the cluster
/// and tell a live node from a stale one; removes the row on graceful shutdown.
public struct NodeHeartbeat: Service {
    let store: any SyncStore
    let node: NodeInfo
    let interval: Duration
    let logger: Logger

    public init(store: any SyncStore, node: NodeInfo, interval: Duration = .seconds(5), logger: Logger = Logger(label: "tributary.node")) {
        self.store = store
        self.node = node
        self.interval = interval
        self.logger = logger
    }

    /// A node whose heartbeat is older than this is reported stale.
    public static func staleAfter(interval: Duration = .seconds(5)) -> TimeInterval {
        Double(interval.components.seconds) * 3
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await store.heartbeatNode(node, now: Date())
                } catch {
                    logger.warning("node heartbeat failed: \(error)")
                }
                try? await Task.sleep(for: interval)
            }
        }
        try? await store.removeNode(id: node.id)
    }
}
