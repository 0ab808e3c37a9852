import Foundation
import Hummingbird
import SyncCore
import SyncStore

/// Liveness, readiness and the served OpenAPI document.
struct HealthRoutes {
    let env: APIEnvironment
    let isShuttingDown: @Sendable () -> Bool

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.get, "/healthz", in: table) { _, _ in
            JSONResponse.make(.object(["status": .string("ok")]))
        }
        router.add(.get, "/readyz", in: table) { _, _ in
            if isShuttingDown() { throw Problem.unavailable("The server is shutting down.") }
            do {
                try await withDeadline(.seconds(2), onTimeout: { TimedOut() }) { try await env.store.ping() }
            } catch {
                throw Problem.unavailable("The database does not answer.")
            }
            if let workers = env.workers, !workers.isAcceptingWork, workers.configuredWorkers > 0 {
                throw Problem.unavailable("The workers are not running.")
            }
            return JSONResponse.make(.object(["status": .string("ready")]))
        }
        router.add(.get, "/v1/health", in: table) { _, _ in
            let report = await HealthReport.evaluate(store: env.store, now: Date())
            return JSONResponse.make(report.json, status: report.status == "unhealthy" ? .serviceUnavailable : .ok)
        }
        router.add(.get, "/openapi.yaml", in: table) { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/yaml"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.bytes)))
        }
    }
}

/// `openapi.yaml`, bundled with the server.
public enum OpenAPIDocument {
    public static let bytes: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
              let data = try? Data(contentsOf: url) else { return [] }
        return [UInt8](data)
    }()
}

struct TimedOut: Error {}

/// `GET /v1/health`: the database, the nodes of the cluster, the queue, stuck syncs, failing and stale sources.
struct HealthReport {
    var status: String
    var json: JSONValue

    /// A node whose heartbeat is older than this is stale (three missed heartbeats).
    static let staleNodeSeconds = NodeInfo.staleAfterSeconds

    static func evaluate(store: any SyncStore, now: Date) async -> HealthReport {
        let started = ContinuousClock.now
        let snapshot: HealthSnapshot
        do {
            // A database that does not answer must not hang a health check (the pool waits for a connection).
            snapshot = try await withDeadline(.seconds(2), onTimeout: { TimedOut() }) { try await store.healthSnapshot(now: now) }
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
        let liveWorkers = nodes.filter { !$0.1 }.reduce(0) { $0 + $1.0.workers }
        let staleNodes = nodes.filter(\.1).count
        let workersOK = staleNodes == 0 && (liveWorkers > 0 || snapshot.queued == 0)
        degraded = degraded || !workersOK
        checks.append(.object([
            "name": .string("workers"), "status": .string(workersOK ? "ok" : "degraded"),
            "live_workers": .number(Double(liveWorkers)), "stale_nodes": .number(Double(staleNodes)),
            "nodes": .array(nodes.map { node, stale in
                .object([
                    "id": .string(node.id), "role": .string(node.role), "workers": .number(Double(node.workers)),
                    "started_at": .string(Timestamp.format(node.startedAt)), "heartbeat_at": .string(Timestamp.format(node.heartbeatAt)),
                    "status": .string(stale ? "stale" : "ok"),
                ])
            }),
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
