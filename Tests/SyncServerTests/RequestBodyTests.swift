import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
import SyncCore
import TestSupport

/// JSON request bodies are read by RFC 8259 and nothing looser: a member named twice is a
/// `400` naming it (first-wins and last-wins clients would disagree), a number past a
/// 64-bit float is a `422` naming its field (it is valid JSON), and text that is not JSON —
/// lone surrogates, bytes that are not UTF-8, nesting past 64 levels — is a `400`.
@Suite("JSON request bodies")
struct RequestBodyTests {
    /// Every route that reads a JSON body, with a body it accepts as a base.
    static let routes: [(HTTPRequest.Method, String)] = [
        (.post, "/v1/sources"), (.patch, "/v1/sources/s"), (.post, "/v1/sources/s/syncs"), (.post, "/v1/sources/s/reset"),
        (.post, "/v1/syncs/cancel"), (.post, "/v1/syncs/retry"), (.post, "/v1/maintenance/prune"),
    ]

    @Test func aMemberNamedTwiceIsRefusedAndNamed() async throws {
        try await TestNode(workers: 0).test { client in
            _ = try await client.createSource("s", records: 1)
            for (method, path) in Self.routes {
                for (body, member) in [
                    (#"{"name": "a", "name": "b"}"#, "name"), (#"{"priority": 5, "priority": "high"}"#, "priority"),
                    (#"{"x": {"a": 1, "a": 1}}"#, "x.a"), (#"{"x": [{"k": 1}, {"k": 1, "k": 2}]}"#, "x[1].k"),
                    (#"{"n\u0061me": 1, "name": 2}"#, "name"), (#"{"\u00e9": 1, "e\u0301": 2}"#, "e\u{301}"),
                ] {
                    let r = try await client.call(method, path, body)
                    #expect(r.status == .badRequest, "\(method) \(path) \(body): \(r.status)")
                    #expect(r.json["errors"]?.arrayValue?.first?["field"]?.stringValue == member, "\(path) \(body): \(String(buffer: r.body))")
                }
            }
            // The same member in two objects is two members.
            let twoObjects = try await client.call(.patch, "/v1/sources/s", #"{"rate_limit": {"key": "k", "requests_per_second": 5}, "concurrency": {"key": "k", "limit": 2}}"#)
            #expect(twoObjects.status == .ok, "\(String(buffer: twoObjects.body))")
            #expect(try await client.call(.get, "/v1/sources/s").json["concurrency"]?["key"] == .string("k"))
        }
    }

    @Test func aNumberPastAFloatIsA422NamingItsField() async throws {
        try await TestNode(workers: 0).test { client in
            _ = try await client.createSource("s", records: 1)
            for number in ["1e400", "-1e400", "1e309", "2e308", "1" + String(repeating: "0", count: 400)] {
                for (method, path, body, field) in [
                    (HTTPRequest.Method.post, "/v1/maintenance/prune", #"{"older_than_seconds": \#(number)}"#, "older_than_seconds"),
                    (.patch, "/v1/sources/s", #"{"rate_limit": {"requests_per_second": \#(number)}}"#, "rate_limit.requests_per_second"),
                    (.patch, "/v1/sources/s", #"{"config": {"records": [1, \#(number)]}}"#, "config.records[1]"),
                    (.post, "/v1/sources/s/syncs", #"{"priority": \#(number)}"#, "priority"),
                ] {
                    let r = try await client.call(method, path, body)
                    #expect(r.status == .unprocessableContent, "\(path) \(body): \(r.status)")
                    #expect(r.json["errors"]?.arrayValue?.first?["field"]?.stringValue == field, "\(path) \(body): \(String(buffer: r.body))")
                }
            }
            // The neighbours inside the range are numbers, checked by their field's own rule.
            for number in ["1.7976931348623157e308", "1e-400", "-0", "0e0"] {
                let r = try await client.call(.post, "/v1/maintenance/prune", #"{"older_than_seconds": \#(number)}"#)
                #expect(r.status != .badRequest, "\(number): \(String(buffer: r.body))")
            }
        }
    }

    @Test func textThatIsNotJSONIsA400() async throws {
        try await TestNode(workers: 0).test { client in
            var bodies: [[UInt8]] = [#"{"name": "\ud800"}"#, #"{"name": "\udc00\ud800"}"#, #"{"name": "a"} x"#, #"{"name": 01}"#,
                                     #"{"name": "a",}"#, #"{'name': 1}"#, #"{"name": NaN}"#, #"{"name": Infinity}"#, #"{"name": .5}"#,
                                     "{\"name\": \"a\tb\"}", #"{"name": "\x"}"#, #"{"name": tru}"#, #"{"#].map { Array($0.utf8) }
            bodies.append(Array(#"{"name": ""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8))
            bodies.append(Array(String(repeating: "[", count: 65).utf8) + Array(String(repeating: "]", count: 65).utf8))
            for body in bodies {
                let r = try await client.executeRequest(uri: "/v1/sources", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(bytes: body))
                #expect(r.status == .badRequest, "\(String(decoding: body, as: UTF8.self)): \(r.status)")
                #expect(r.json["code"] == .string("validation_failed"))
            }
            // Deep but within the bound: JSON, refused by the source rules instead.
            let deep = #"{"name": "d", "kind": "synthetic", "config": {"x": "# + String(repeating: "[", count: 60) + String(repeating: "]", count: 60) + "}}"
            #expect(try await client.call(.post, "/v1/sources", deep).status != .badRequest)
            #expect(try await client.call(.get, "/healthz").status == .ok)
        }
    }

    /// Impossible dates are refused where filters take dates (the list, the bulk bodies, the
    /// dashboard), not rolled over to the next month; their existing neighbours are taken.
    @Test func impossibleDatesInFiltersAre422() async throws {
        try await TestNode(workers: 0).test { client in
            for bad in ["2026-02-30T00:00:00Z", "2026-01-01T25:61:61Z", "0000-01-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-01-01T23:59:60Z"] {
                let list = try await client.call(.get, "/v1/syncs?since=\(bad)")
                #expect(list.status == .unprocessableContent, "list \(bad): \(list.status)")
                for path in ["/v1/syncs/cancel", "/v1/syncs/retry"] {
                    let bulk = try await client.call(.post, path, #"{"until": "\#(bad)"}"#)
                    #expect(bulk.status == .unprocessableContent && bulk.json["errors"]?.arrayValue?.first?["field"] == .string("until"), "\(path) \(bad)")
                }
                let page = try await client.call(.get, "/syncs?since=\(bad.dropLast(1))")
                #expect(page.status == .unprocessableContent, "dashboard \(bad): \(page.status)")
            }
            for good in ["2024-02-29T00:00:00Z", "2026-02-28T23:59:59Z", "2026-01-01T01:00:00+01:00"] {
                #expect(try await client.call(.get, "/v1/syncs?since=\(good.replacingOccurrences(of: "+", with: "%2B"))").status == .ok, "\(good)")
                #expect(try await client.call(.post, "/v1/syncs/cancel", #"{"since": "\#(good)"}"#).status == .ok, "\(good)")
            }
            #expect(try await client.call(.get, "/syncs?since=2024-02-29T00:00").status == .ok)
        }
    }

    /// A nonzero number too small for a float reads as zero: it is out of range like `1e400`
    /// (an integer field took `1e-99999999999999999999` as 0), while zeros written any way stay zero.
    @Test func aNumberTooSmallForAFloatIsA422NamingItsField() async throws {
        try await TestNode(workers: 0).test { client in
            _ = try await client.createSource("s", records: 1)
            for number in ["1e-400", "-1e-99999999999999999999", "0.5e-330", "0." + String(repeating: "0", count: 400) + "1"] {
                let r = try await client.call(.post, "/v1/sources/s/syncs", #"{"priority": \#(number)}"#)
                #expect(r.status == .unprocessableContent, "\(number): \(r.status)")
                #expect(r.json["errors"]?.arrayValue?.first?["field"]?.stringValue == "priority", "\(number): \(String(buffer: r.body))")
                #expect(r.json["errors"]?.arrayValue?.first?["message"]?.stringValue?.contains("range") == true)
            }
            for zero in ["0", "-0", "0e-400", "0.000e5", "1e-300"] {
                let r = try await client.call(.post, "/v1/maintenance/prune", #"{"older_than_seconds": \#(zero)}"#)
                #expect(r.status != .unprocessableContent || !(String(buffer: r.body).contains("range")), "\(zero): \(String(buffer: r.body))")
            }
        }
    }

    /// JSON is UTF-8 (RFC 8259 §8.1): a body declared in another charset is `415`, not read as
    /// UTF-8 all the same; so is `application/+json`, which names no type.
    @Test func aBodyInAnotherCharsetIsRefused() async throws {
        try await TestNode(workers: 0).test { client in
            for (type, status) in [("application/json; charset=utf-16", HTTPResponse.Status.unsupportedMediaType),
                                   ("application/json; charset=latin1", .unsupportedMediaType), ("application/+json", .unsupportedMediaType),
                                   ("application/json;charset=\"UTF-8\"", .created), ("application/json; charset=utf8", .created),
                                   ("Application/Problem+JSON", .created)] {
                let name = "c\(status.code)\(type.count)"
                let body = #"{"name": "\#(name)", "kind": "synthetic", "config": {"records": 1}}"#
                let r = try await client.executeRequest(uri: "/v1/sources", method: .post, headers: [.contentType: type],
                                                        body: ByteBuffer(string: body))
                #expect(r.status == status, "\(type): \(r.status) \(String(buffer: r.body))")
            }
        }
    }
}
