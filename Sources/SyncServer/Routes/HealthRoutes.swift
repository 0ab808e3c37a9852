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
                try await Timeouts.databaseCheck { try await env.store.ping() }
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
            var json = report.json.objectValue ?? [:]
            // Whether new secrets are sealed at rest, and by which key (docs/credentials.md).
            json["secrets"] = .object([
                "at_rest": .string(env.secretKeyID == nil ? "clear" : "sealed"),
                "key_id": env.secretKeyID.map(JSONValue.string) ?? .null,
            ])
            return JSONResponse.make(.object(json), status: report.status == "unhealthy" ? .serviceUnavailable : .ok)
        }
        // Node drain (docs/queue.md): the node stops claiming within a second, its running
        // syncs finish; resume (or a restart) has it claim again. Sent to any node.
        for (action, draining) in [("drain", true), ("resume", false)] {
            router.add(.post, "/v1/nodes/{id}/\(action)", in: table) { request, context in
                let node = try await env.store.setDraining(nodeID: try request.path("id", context), draining: draining)
                return JSONResponse.make(APIRepresentation.node(node, now: Date()))
            }
        }
        router.add(.get, "/openapi.yaml", in: table) { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/yaml"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.bytes)))
        }
    }
}
