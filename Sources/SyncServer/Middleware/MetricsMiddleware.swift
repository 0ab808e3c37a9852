import Foundation
import Hummingbird
import SyncCore

/// Times every request into `tributary_http_request_duration_seconds{method,route,status}`,
/// by the route's template (`/v1/sources/{id}`), never the raw path: 10,000 sources are
/// one label value. A path no route matches is `unmatched`. Sits outside the problem
/// middleware, so the status is the one the client gets. Each request is also logged at
/// `debug` (`LOG_LEVEL=debug`): method, route template, status, duration and `request_id`
/// (never the raw path or query, which may carry names, keys or cursors).
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = TributaryRequestContext
    let metrics: TributaryMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        // Hummingbird names an unmatched path "NotFound"; docs/operations.md calls it `unmatched`.
        let route = context.endpointPath.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched"
        metrics.httpRequest(method: request.method.rawValue, route: route, status: Int(response.status.code),
                            nanoseconds: elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        context.logger.debug("request served", metadata: [
            "method": .string(request.method.rawValue), "route": .string(route), "status": .stringConvertible(Int(response.status.code)),
            "duration_ms": .string(String(format: "%.3f", Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)),
        ])
        return response
    }
}
