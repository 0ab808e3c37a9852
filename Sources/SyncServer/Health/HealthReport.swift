import Foundation
import SyncCore
import SyncStore

/// `GET /v1/health`: the database, the nodes of the cluster, the queue, stuck syncs, failing and stale sources.
struct HealthReport {
    var status: String
    var json: JSONValue

    /// A node whose heartbeat is older than this is stale (three missed heartbeats).
    static let staleNodeSeconds = NodeInfo.staleAfterSeconds

    static func evaluate(store: any ClusterControl, now: Date) async -> HealthReport {
        let started = ContinuousClock.now
        let snapshot: HealthSnapshot
        do {
            // A database that does not answer must not hang a health check (the pool waits for a connection).
            snapshot = try await Timeouts.databaseCheck { try await store.healthSnapshot(now: now) }
        } catch {
            let database: JSONValue = .object(["name": .string("database"), "status": .string("unhealthy"),
                                               "detail": .string("The database does not answer.")])
            return HealthReport(status: "unhealthy", json: .object(["status": .string("unhealthy"), "checks": .array([database])]))
        }
        let elapsed = ContinuousClock.now - started
        let latency = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        var checks: [JSONValue] = [
            .object(["name": .string("database"), "status": .string("ok"), "latency_ms": .number((latency * 10).rounded() / 10)]),
        ]
        var degraded = false

        let nodes = snapshot.nodes.map { node -> (NodeInfo, Bool) in (node, now.timeIntervalSince(node.heartbeatAt) > staleNodeSeconds) }
        // A draining node's workers take nothing new: they do not count as live.
        let liveWorkers = nodes.filter { !$0.1 && !$0.0.draining }.reduce(0) { $0.addingSaturated($1.0.workers) }
        let staleNodes = nodes.filter(\.1).count
        let workersOK = staleNodes == 0 && (liveWorkers > 0 || snapshot.queued == 0)
        degraded = degraded || !workersOK
        checks.append(.object([
            "name": .string("workers"), "status": .string(workersOK ? "ok" : "degraded"),
            "live_workers": .number(Double(liveWorkers)), "stale_nodes": .number(Double(staleNodes)),
            "nodes": .array(nodes.map { node, _ in APIRepresentation.node(node, now: now) }),
        ]))
        let oldest = snapshot.oldestQueuedAt.map { max(0, now.timeIntervalSince($0)) }
        checks.append(.object([
            "name": .string("queue"), "status": .string("ok"), "depth": .number(Double(snapshot.queued)),
            "running": .number(Double(snapshot.running)),
            "oldest_queued_seconds": oldest.map { .number(($0 * 10).rounded() / 10) } ?? .null,
        ]))
        degraded = degraded || snapshot.expiredLeases > 0
        checks.append(.object([
            "name": .string("stuck_syncs"), "status": .string(snapshot.expiredLeases > 0 ? "degraded" : "ok"),
            "count": .number(Double(snapshot.expiredLeases)),
        ]))
        for (name, sources) in [("failing_sources", snapshot.failingSources), ("stale_sources", snapshot.staleSources)] {
            degraded = degraded || !sources.isEmpty
            checks.append(.object([
                "name": .string(name), "status": .string(sources.isEmpty ? "ok" : "degraded"),
                "count": .number(Double(sources.count)),
                "sources": .array(sources.map { .object(["id": .string($0.id), "name": .string($0.name)]) }),
            ]))
        }
        let status = degraded ? "degraded" : "ok"
        return HealthReport(status: status, json: .object(["status": .string(status), "checks": .array(checks)]))
    }
}
