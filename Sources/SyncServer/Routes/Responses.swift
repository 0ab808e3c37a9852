import Foundation
import HTTPTypes
import Hummingbird
import SyncCore

/// Builders of JSON responses.
enum JSONResponse {
    static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        bytes(JSONWriter.bytes(value), status: status, headers: headers)
    }

    static func bytes(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

extension Request {
    /// The body, at most `limit` bytes (a larger one is a 413 `payload_too_large`).
    func bodyBytes(limit: Int) async throws -> [UInt8] {
        if let length = headers[.contentLength].flatMap(Int.init), length > limit { throw Problem.payloadTooLarge(limit: limit) }
        var buffer = try await body.collect(upTo: limit)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// The path parameter `name`, percent-decoded, as every route reads its segments
    /// (`/v1/sources/my%20crm`, `/v1/nodes/a%2Fb/drain`, `/records/a%2Fb`); a segment whose
    /// encoding is broken (`%zz`) names nothing: `404`; nor does one holding U+0000 (`%00`),
    /// which nothing stored can hold.
    func path(_ name: String, _ context: TributaryRequestContext) throws -> String {
        guard let raw = context.parameters.get(name) else { throw Problem.notFound("Missing path parameter \(name).") }
        guard let value = raw.removingPercentEncoding else { throw Problem.notFound("\(raw) is not a percent-encoded path segment.") }
        guard !value.utf8.contains(0) else { throw Problem.notFound("\(raw) names nothing: it holds U+0000.") }
        return value
    }
}
