import Foundation
import Hummingbird
import SyncCore

/// Times every request into `tributary_http_request_duration_seconds{method,route,status}`,
/// by the route's template (`/v1/sources/{id}`), never the raw path: 10,000 sources are
/// one label value. A path no route matches is `unmatched`. Sits outside the problem
/// middleware, so the status is the one the client gets.
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
        return response
    }
}
