import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SyncStore

/// Turns every error into a problem+json response, so no route can answer with
/// a bare 500 or an HTML error: unknown routes become `not_found`, known paths
/// with the wrong method `method_not_allowed`, oversized bodies
/// `payload_too_large`, store errors their codes, anything else `internal`
/// (logged with the request id; the client sees no detail).
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = TributaryRequestContext
    let routes: RouteTable
    let maxBodyBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            if let fault = HTTPField.Name(KeepAliveRule.hostFault).flatMap({ request.headers[$0] }) {
                throw Problem(.badRequest, code: "validation_failed", title: "Bad request",
                              detail: fault == "several" ? "The request has more than one Host header (RFC 9112 §3.2)."
                                                         : "An HTTP/1.1 request needs a Host header (RFC 9112 §3.2).")
            }
            // The API's routes; the dashboard's pages check it themselves, to answer with a page.
            if request.uri.path.hasPrefix("/v1/") { try request.checkQueryText() }
            return try await next(request, context)
        } catch let problem as Problem {
            return problem.render(instance: request.uri.path, requestID: context.requestID)
        } catch let error as SyncStoreError {
            let problem = Problem.from(error)
            // A 4xx is the client's expected answer (a name taken, a sync already active), not a
            // fault of this node: it is logged for debugging only. Anything else is an error.
            if problem.status.code >= 500 {
                if case .unavailable = error {} else { context.logger.error("store error: \(error)") }
            } else {
                context.logger.debug("request refused: \(problem.code)")
            }
            return problem.render(instance: request.uri.path, requestID: context.requestID)
        } catch is NIOTooManyBytesError {
            return Problem.payloadTooLarge(limit: maxBodyBytes).render(instance: request.uri.path, requestID: context.requestID)
        } catch let error as HTTPError where error.status == .notFound {
            let path = request.uri.path
            let allowed = routes.methods(matching: path)
            let problem: Problem = allowed.isEmpty
                ? .notFound("No route \(request.method.rawValue) \(path).")
                : .methodNotAllowed(request.method.rawValue, path: path, allowed: allowed)
            return problem.render(instance: path, requestID: context.requestID)
        } catch let error as HTTPError {
            let problem = Problem(error.status, code: error.status == .contentTooLarge ? "payload_too_large" : "validation_failed",
                                  title: error.status.reasonPhrase, detail: error.body ?? error.status.reasonPhrase)
            return problem.render(instance: request.uri.path, requestID: context.requestID)
        } catch {
            context.logger.error("unhandled error: \(String(reflecting: error))")
            return Problem.internalError().render(instance: request.uri.path, requestID: context.requestID)
        }
    }
}
