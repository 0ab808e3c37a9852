import Foundation
import SyncCore
import Testing
import TestSupport

/// Compressed bodies and next-link schemes as upstreams really send them: every gzip member
/// is read (RFC 1952 §2.2), anything after the compressed data is a permanent
/// `invalid_response`, and so is any next page named with a scheme other than `http`/`https`,
/// whichever pagination style named it.
@Suite("Upstream encodings and next-link schemes")
struct UpstreamEncodingTests {
    /// `text` compressed by a command outside Tributary (`gzip`, Python's zlib).
    static func compressed(_ text: String, _ how: String, in dir: TemporaryDirectory) async throws -> [UInt8] {
        let plain = dir.file("p-\(UUID().uuidString)")
        try text.write(toFile: plain, atomically: true, encoding: .utf8)
        let script = switch how {
        case "gzip": "import gzip,sys; sys.stdout.buffer.write(gzip.compress(open(sys.argv[1],'rb').read()))"
        case "zlib": "import zlib,sys; sys.stdout.buffer.write(zlib.compress(open(sys.argv[1],'rb').read()))"
        default: "import zlib,sys; c=zlib.compressobj(wbits=-15); sys.stdout.buffer.write(c.compress(open(sys.argv[1],'rb').read())+c.flush())"
        }
        let out = plain + ".z"
        let result = try await runCommand("/bin/sh", ["-c", "python3 -c \"\(script)\" \"$0\" > \"$1\"", plain, out])
        try #require(result.status == 0, "\(result.output)")
        return try [UInt8](Data(contentsOf: URL(fileURLWithPath: out)))
    }

    /// Serves `body` with `encoding` and runs a one-page sync of it.
    static func sync(_ body: [UInt8], encoding: String) async throws -> (sync: JSONValue, requests: Int) {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in
                var answer = FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Content-Encoding", encoding)], body: "")
                answer.bytes = body
                return answer
            }
            _ = try await client.createHTTPSource("z", #"""
                {"url": "\#(fixture.baseURL)/s/z", "records_path": "/rows", "primary_key": "id", "max_request_retries": 2, "request_backoff_seconds": 0.01}
                """#)
            return (try await client.runSync("z"), fixture.requests.count)
        }
    }

    @Test func everyGzipMemberIsRead() async throws {
        let dir = try TemporaryDirectory("gzip-members")
        defer { dir.remove() }
        let parts = [#"{"rows": [{"id": 1}, "#, #"{"id": 2}, {"id": 3}"#, "]}"]
        var members: [UInt8] = []
        for part in parts { members += try await Self.compressed(part, "gzip", in: dir) }
        let whole = try await Self.compressed(parts.joined(), "gzip", in: dir)
        let twice = try await Self.compressed(String(decoding: whole, as: Unicode.ASCII.self), "gzip", in: dir)
        _ = twice
        for (name, body, encoding) in [("three members", members, "gzip"), ("one member", whole, "gzip"), ("x-gzip", whole, "x-gzip"),
                                       ("upper case", whole, " GZIP "), ("with identity", whole, "identity, gzip")] {
            let (sync, requests) = try await Self.sync(body, encoding: encoding)
            #expect(sync["status"] == .string("completed"), "\(name): \(sync["error"] ?? .null)")
            #expect(sync["result"]?["records_created"] == .number(3), "\(name)")
            #expect(requests == 1, "\(name)")
        }
    }

    @Test func deflateInBothItsFormsIsRead() async throws {
        let dir = try TemporaryDirectory("deflate")
        defer { dir.remove() }
        let text = #"{"rows": [{"id": 1}, {"id": 2}]}"#
        for how in ["zlib", "raw"] {
            let (sync, _) = try await Self.sync(try await Self.compressed(text, how, in: dir), encoding: "deflate")
            #expect(sync["status"] == .string("completed"), "\(how): \(sync["error"] ?? .null)")
            #expect(sync["result"]?["records_created"] == .number(2), "\(how)")
        }
    }

    @Test func bytesAfterTheCompressedBodyOrACutBodyAreAnInvalidResponse() async throws {
        let dir = try TemporaryDirectory("gzip-trailing")
        defer { dir.remove() }
        let text = #"{"rows": [{"id": 1}, {"id": 2}]}"#
        let member = try await Self.compressed(text, "gzip", in: dir)
        let zlib = try await Self.compressed(text, "zlib", in: dir)
        let cases: [(String, [UInt8], String)] = [
            ("garbage after a member", member + Array("garbage".utf8), "gzip"),
            ("zeros after a member", member + [0, 0, 0, 0], "gzip"),
            ("one byte after a member", member + [0x1f], "gzip"),
            ("a second member cut short", member + Array(member.prefix(12)), "gzip"),
            ("a member cut short", Array(member.dropLast(6)), "gzip"),
            ("not gzip at all", Array(text.utf8), "gzip"),
            ("bytes after a zlib stream", zlib + [1, 2, 3], "deflate"),
            ("an encoding not asked for", Array(text.utf8), "br"),
            ("a gzip member named deflate", member, "deflate"),
        ]
        for (name, body, encoding) in cases {
            let (sync, requests) = try await Self.sync(body, encoding: encoding)
            #expect(sync["status"] == .string("failed"), "\(name): \(sync)")
            #expect(sync["error"]?["code"] == .string("invalid_response"), "\(name): \(sync["error"] ?? .null)")
            #expect(sync["error"]?["retryable"] == .bool(false), "\(name)")
            #expect(requests == 1, "\(name): asked \(requests) times")
        }
    }

    /// Only `http` and `https` (in any case) name a next page; every other scheme, however
    /// close to them, is the upstream's permanent error in `next_url` and `Link` alike.
    @Test(arguments: ["link_header", "next_url"])
    func aNextPageWithAnotherSchemeIsAnInvalidResponse(_ style: String) async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            let host = fixture.baseURL.replacingOccurrences(of: "http://", with: "")
            /// A source whose first page names `scheme://…/two` as the next one, in `style`.
            func source(_ name: String, scheme: String) async throws {
                let target = "\(scheme)://\(host)/s/two"
                fixture.script { request in
                    if request.path == "/two" { return .json(#"{"rows": [{"id": 2}]}"#) }
                    return style == "link_header"
                        ? FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", "<\(target)>; rel=\"next\"")], body: #"{"rows": [{"id": 1}]}"#)
                        : .json(#"{"rows": [{"id": 1}], "next": "\#(target)"}"#)
                }
                let pagination = style == "link_header" ? #"{"type": "link_header"}"# : #"{"type": "next_url", "path": "/next"}"#
                _ = try await client.createHTTPSource(name, #"""
                    {"url": "\#(fixture.baseURL)/s/one", "records_path": "/rows", "primary_key": "id", "pagination": \#(pagination),
                     "max_request_retries": 2, "request_backoff_seconds": 0.01}
                    """#)
            }
            for (index, scheme) in ["httpx", "http+unix", "https+x", "ftp", "gopher", "file", "javascript", "ws", "h", "hxxp"].enumerated() {
                try await source("s\(index)", scheme: scheme)
                let sync = try await client.runSync("s\(index)")
                #expect(sync["status"] == .string("failed"), "\(scheme): \(sync)")
                #expect(sync["error"]?["code"] == .string("invalid_response"), "\(scheme): \(sync["error"] ?? .null)")
                #expect(sync["attempts"]?.arrayValue?.count == 1, "\(scheme): retried")
            }
            // The neighbours that are fine: the scheme in any case.
            for (index, scheme) in ["HTTP", "Http"].enumerated() {
                try await source("ok\(index)", scheme: scheme)
                let sync = try await client.runSync("ok\(index)")
                #expect(sync["status"] == .string("completed"), "\(scheme): \(sync["error"] ?? .null)")
                #expect(sync["result"]?["records_created"] == .number(2), "\(scheme)")
            }
        }
    }

    /// A `Link` header that breaks RFC 8288 fails a full sync as `invalid_response`; it is
    /// neither followed nor taken for the last page (which would delete the records the sync
    /// did not reach).
    @Test func aMalformedLinkHeaderFailsAFullSyncAndDeletesNothing() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            let base = fixture.baseURL
            let first = ScriptedText(#"<\#(base)/s/two>; rel="next""#)
            fixture.script { request in
                if request.path == "/two" { return .json(#"{"rows": [{"id": 2}]}"#) }
                return FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", first.value)], body: #"{"rows": [{"id": 1}]}"#)
            }
            _ = try await client.createHTTPSource("lk", #"""
                {"url": "\#(base)/s/one", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "link_header"}}
                """#)
            #expect(try await client.runSync("lk")["result"]?["records_created"] == .number(2))
            first.value = #"<\#(base)/s/two>; title="never closed; rel="next""#
            let sync = try await client.runSync("lk")
            #expect(sync["status"] == .string("failed"), "\(sync)")
            #expect(sync["error"]?["code"] == .string("invalid_response"), "\(sync["error"] ?? .null)")
            let records = try await client.call(.get, "/v1/sources/lk/records").json["items"]?.arrayValue ?? []
            #expect(records.count == 2 && records.allSatisfy { $0["deleted_at"] == nil || $0["deleted_at"] == .null }, "\(records)")
        }
    }
}

/// The Link header a script serves, changed between syncs.
final class ScriptedText: @unchecked Sendable {
    private let lock = NSLock()
    private var text: String
    init(_ text: String) { self.text = text }
    var value: String {
        get { lock.withLock { text } }
        set { lock.withLock { text = newValue } }
    }
}
