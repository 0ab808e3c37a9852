import Foundation
import HTTPTypes
import Hummingbird
import SyncCore

/// An RFC 9457 problem: the body of every non-2xx response.
///
/// `code` is the stable, machine-readable name (docs/api.md, "Errors"); `type` is
/// derived from it. Extra members (`active_sync_id`, `current_status`,
/// `errors`, `retry_after_seconds`, `request_id`) are added per problem.
public struct Problem: Error, Sendable, HTTPResponseError {
    public var status: HTTPResponse.Status
    public var code: String
    public var title: String
    public var detail: String
    public var errors: [FieldError]?
    public var extra: [String: JSONValue]
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, title: String, detail: String, errors: [FieldError]? = nil,
                extra: [String: JSONValue] = [:], headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors
        self.extra = extra
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        render(instance: request.uri.path, requestID: request.headers[.xRequestID])
    }

    /// The response for this problem at path `instance`.
    public func render(instance: String, requestID: String?) -> Response {
        var headers = headers
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body(instance: instance, requestID: requestID))))
    }

    /// The problem+json body.
    func body(instance: String, requestID: String?) -> Data {
        var body: [String: JSONValue] = extra
        body["type"] = .string("/problems/" + code.replacingOccurrences(of: "_", with: "-"))
        body["title"] = .string(title)
        body["status"] = .number(Double(status.code))
        body["detail"] = .string(detail)
        body["instance"] = .string(instance)
        body["code"] = .string(code)
        if let errors {
            body["errors"] = .array(errors.map { .object(["field": .string($0.field), "message": .string($0.message)]) })
        }
        if code == "internal", let requestID { body["request_id"] = .string(requestID) }
        return Data(JSONWriter.bytes(.object(body)))
    }
}

extension HTTPField.Name {
    static let xRequestID = HTTPField.Name("X-Request-Id")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}

extension Problem {
    static func validation(_ errors: [FieldError], status: HTTPResponse.Status = .unprocessableContent, detail: String? = nil) -> Problem {
        Problem(status, code: "validation_failed", title: "The request is not valid",
                detail: detail ?? errors.map { "\($0.field): \($0.message)" }.joined(separator: "; "), errors: errors)
    }

    static func malformedJSON(_ detail: String) -> Problem {
        Problem(.badRequest, code: "validation_failed", title: "The request body is not valid JSON", detail: detail,
                errors: [FieldError("body", detail)])
    }

    /// A JSON body that names one member twice in an object: `400`, naming it (clients and
    /// proxies disagree on which one wins, so neither does).
    static func duplicateMember(_ path: String) -> Problem {
        Problem(.badRequest, code: "validation_failed", title: "The request body names a member twice",
                detail: "\(path) appears more than once in its object; each member may appear once.",
                errors: [FieldError(path, "appears more than once in its object")])
    }

    static func notFound(_ detail: String) -> Problem {
        Problem(.notFound, code: "not_found", title: "Not found", detail: detail)
    }

    static func methodNotAllowed(_ method: String, path: String, allowed: [String]) -> Problem {
        var headers = HTTPFields()
        headers[.allow] = allowed.joined(separator: ", ")
        return Problem(.methodNotAllowed, code: "method_not_allowed", title: "Method not allowed",
                       detail: "\(method) is not allowed on \(path); allowed: \(allowed.joined(separator: ", ")).", headers: headers)
    }

    static let unauthorized: Problem = {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer"
        return Problem(.unauthorized, code: "unauthorized", title: "Unauthorized",
                       detail: "A valid bearer token is required.", headers: headers)
    }()

    static func forbidden(_ detail: String) -> Problem {
        Problem(.forbidden, code: "forbidden", title: "Forbidden", detail: detail)
    }

    static func payloadTooLarge(limit: Int) -> Problem {
        Problem(.contentTooLarge, code: "payload_too_large", title: "Payload too large",
                detail: "The request body exceeds the limit of \(limit) bytes.")
    }

    static func unavailable(_ detail: String, retryAfter: Int = 5) -> Problem {
        var headers = HTTPFields()
        headers[.retryAfter] = String(retryAfter)
        return Problem(.serviceUnavailable, code: "unavailable", title: "Service unavailable", detail: detail, headers: headers)
    }

    static func internalError() -> Problem {
        Problem(.internalServerError, code: "internal", title: "Internal error",
                detail: "The server hit an unexpected condition; quote the request_id when reporting it.")
    }
}
