import Foundation
import Hummingbird
import SyncCore

/// Gives every request an id (the client's `X-Request-Id` if it sent a sane one)
/// and returns it on every response, errors included.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = TributaryRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id: String
        if let sent = request.headers[.xRequestID], (1...200).contains(sent.utf8.count),
           sent.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            id = sent
        } else {
            id = Identifier.make("req")
        }
        var context = context
        context.requestID = id
        context.logger[metadataKey: "request_id"] = .string(id)
        var response = try await next(request, context)
        response.headers[.xRequestID] = id
        return response
    }
}
