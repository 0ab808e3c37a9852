import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncServer
import TestSupport

@Suite("HTTP API")
struct APITests {
    /// Every served route is in openapi.yaml and every documented route is served.
    @Test func openAPIDescribesExactlyTheServedRoutes() async throws {
        let node = try await TestNode()
        try await node.test { client in
            let served = try await client.call(.get, "/openapi.yaml")
            #expect(served.status == .ok)
            let documented = Self.operations(in: String(buffer: served.body))
            let registered = Set(node.server.routes.routes.map { "\($0.method) \($0.path)" })
            #expect(!registered.isEmpty)
            #expect(documented.subtracting(registered).isEmpty, "documented but not served: \(documented.subtracting(registered).sorted())")
            #expect(registered.subtracting(documented).isEmpty, "served but not documented: \(registered.subtracting(documented).sorted())")
        }
    }

    /// `METHOD /path` pairs under `paths:` (two-space path keys, four-space method keys).
    static func operations(in yaml: String) -> Set<String> {
        var result: Set<String> = []
        var inPaths = false
        var path: String?
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") { inPaths = line.hasPrefix("paths:"); continue }
            guard inPaths else { continue }
            if line.hasPrefix("  /") {
                path = String(line.dropFirst(2).prefix { $0 != ":" })
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path {
                let key = line.dropFirst(4).prefix { $0 != ":" }
                if ["get", "put", "post", "patch", "delete", "head", "options"].contains(key) {
                    result.insert("\(key.uppercased()) \(path)")
                }
            }
        }
        return result
    }

    @Test(arguments: StoreBackend.allCases)
    func fiftyConcurrentTriggersOverHTTPGiveExactlyOne202(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, connections: 50).test(.live) { client in
            _ = try await client.createSource("storm")
            let responses = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for _ in 0..<50 { group.addTask { try await client.call(.post, "/v1/sources/storm/syncs") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let accepted = responses.filter { $0.status == .accepted }
            #expect(accepted.count == 1)
            let winner = try #require(accepted.first?.json["id"]?.stringValue)
            let conflicts = responses.filter { $0.status == .conflict }
            #expect(conflicts.count == 49)
            #expect(conflicts.allSatisfy { $0.problemCode == "sync_already_active" && $0.json["active_sync_id"]?.stringValue == winner })
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func idempotencyKeyReturnsTheOriginalResponse(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend).test { client in
            _ = try await client.createSource("s")
            let key: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "abc"]
            let a = try await client.call(.post, "/v1/sources/s/syncs", #"{"priority": 3}"#, headers: key)
            let b = try await client.call(.post, "/v1/sources/s/syncs", #"{"priority": 3}"#, headers: key)
            #expect(a.status == .accepted && b.status == .accepted)
            #expect(a.json["id"] == b.json["id"])
            #expect(a.json["priority"]?.intValue == 3)
            let other = try await client.call(.post, "/v1/sources/s/syncs", #"{"priority": 4}"#, headers: key)
            #expect(other.status == .unprocessableContent)
            #expect(other.json["code"] == .string("validation_failed"), "\(other.json)")
            #expect(other.json["errors"]?.arrayValue?.first?["field"] == .string("Idempotency-Key"), "\(other.json)")
            let noKey = try await client.call(.post, "/v1/sources/s/syncs")
            #expect(noKey.status == .conflict)
            #expect(noKey.json["code"] == .string("sync_already_active"))
            #expect(noKey.json["active_sync_id"] == a.json["id"])
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func sourceLifecycleAndSecretsAreWriteOnly(_ backend: StoreBackend) async throws {
        let node = try await TestNode(backend: backend)
        try await node.test { client in
            let created = try await client.call(.post, "/v1/sources", #"""
                {"name": "crm", "kind": "open", "config": {"url": "http://127.0.0.1:1/x", "headers": {"Authorization": "Bearer s3cr3t", "X-Plain": "p"},
                 "api_key": "k3y", "nested": {"password": "pw", "page": 1}}, "priority": 2,
                 "retry": {"max_attempts": 3}}
                """#)
            #expect(created.status == .created)
            let id = try #require(created.json["id"]?.stringValue)
            #expect(created.headers[.location] == "/v1/sources/\(id)")
            let text = String(buffer: created.body)
            for secret in ["s3cr3t", "k3y", "\"pw\"", "\"p\""] { #expect(!text.contains(secret), "leaked \(secret)") }
            let config = try #require(created.json["config"])
            #expect(config["headers"]?["Authorization"] == .string("***"))
            #expect(config["api_key"] == .string("***"))
            #expect(config["nested"]?["password"] == .string("***"))
            #expect(config["nested"]?["page"] == .number(1))
            #expect(created.json["health"] == .string("never_synced"))
            #expect(created.json["last_sync"] == .null)
            #expect(created.json["retry"]?["max_attempts"] == .number(3))

            // PATCH that does not mention the secrets keeps them; "***" sent back keeps them too.
            let patched = try await client.call(.patch, "/v1/sources/crm", #"{"config": {"url": "http://127.0.0.1:2/y", "api_key": "***"}, "priority": 7}"#)
            #expect(patched.status == .ok)
            #expect(patched.json["priority"] == .number(7))
            #expect(patched.json["config"]?["url"] == .string("http://127.0.0.1:2/y"))
            let stored = try #require(try await node.store.source(idOrName: id)).config
            #expect(stored["api_key"] == .string("k3y"))
            #expect(stored["headers"]?["Authorization"] == .string("Bearer s3cr3t"))
            #expect(stored["nested"]?["password"] == .string("pw"))
            #expect(stored["url"] == .string("http://127.0.0.1:2/y"))
            let byName = try await client.call(.get, "/v1/sources/crm")
            #expect(byName.json["id"]?.stringValue == id)
            #expect(try await client.call(.delete, "/v1/sources/\(id)").status == .noContent)
            #expect(try await client.call(.get, "/v1/sources/\(id)").status == .notFound)
        }
    }

    /// `since` (inclusive) and `until` (exclusive) filter syncs by the time they were queued.
    @Test(arguments: StoreBackend.allCases)
    func syncsFilterBySinceAndUntil(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend).test { client in
            _ = try await client.createSource("t")
            var syncs: [JSONValue] = []
            for i in 0..<3 {
                if i > 0 { try await Task.sleep(for: .milliseconds(20)) }
                let s = try await client.call(.post, "/v1/sources/t/syncs").json
                syncs.append(s)
                if i < 2 { _ = try await client.call(.post, "/v1/syncs/\(s["id"]!.stringValue!)/cancel") }
            }
            func ids(_ query: String) async throws -> [String] {
                let r = try await client.call(.get, "/v1/syncs?\(query)")
                #expect(r.status == .ok, "\(query): \(String(buffer: r.body))")
                return r.json["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
            }
            let id = syncs.map { $0["id"]!.stringValue! }
            let queued = syncs.map { $0["queued_at"]!.stringValue! }
            let since1 = try await ids("since=\(queued[1])")
            #expect(since1 == [id[2], id[1]], "\(queued) \(id)")
            let until1 = try await ids("until=\(queued[1])")
            #expect(until1 == [id[0]])
            let between = try await ids("since=\(queued[1])&until=\(queued[2])")
            #expect(between == [id[1]])
            let queuedSince2 = try await ids("since=\(queued[2])&status=queued")
            #expect(queuedSince2 == [id[2]])
            let bad = try await client.call(.get, "/v1/syncs?since=yesterday")
            #expect(bad.status == .unprocessableContent)
            #expect(bad.json["errors"]?.arrayValue?.first?["field"] == .string("since"))
        }
    }

    /// Item 18 of issue 13: a cursor the server did not issue is a 422, whatever it decodes to.
    @Test(arguments: StoreBackend.allCases)
    func aCursorTheServerDidNotIssueIsA422(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend).test { client in
            for i in 0..<3 { _ = try await client.createSource("c\(i)") }
            let issued = try #require(try await client.call(.get, "/v1/sources?limit=1").json["next_cursor"]?.stringValue)
            #expect(try await client.call(.get, "/v1/sources?limit=1&cursor=\(issued)").status == .ok)
            func b64(_ text: String) -> String {
                Data(text.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
                    .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            }
            // Made up in the old format, edited, of another list, or plain garbage.
            for forged in [b64("src:src_0"), b64("src:0:src_0"), b64("rec:zzz"), String(issued.dropLast(2)) + "AA", "zzz", "42"] {
                let r = try await client.call(.get, "/v1/sources?limit=1&cursor=\(forged)")
                #expect(r.status == .unprocessableContent, "\(forged)")
                #expect(r.json["code"] == .string("validation_failed"), "\(forged)")
            }
            let source = try #require(try await client.call(.get, "/v1/sources/c0").json["id"]?.stringValue)
            #expect(try await client.call(.get, "/v1/sources/\(source)/records?after=\(b64("rec:zzz"))").status == .unprocessableContent)
        }
    }

    /// A rate limit too small to wait for (a token every 10^300 s), or one whose default burst
    /// would not fit an integer (-9.3e18 and below trapped the node), is refused naming the
    /// field, on create and on patch, and the node still answers.
    @Test func aVanishingOrHugeRateLimitIsRefusedNamingTheField() async throws {
        try await TestNode().test { client in
            _ = try await client.createSource("kept")
            for rps in ["1e-300", "0", "-1", "0.0009", "-9.3e18", "-1e300", "1e300", "100000.5", "\"5\"", "true"] {
                for burst in ["", #", "burst": 1.5"#, #", "burst": null"#] {
                    let limit = #""rate_limit": {"requests_per_second": \#(rps)\#(burst)}"#
                    let r = try await client.call(.post, "/v1/sources", #"{"name": "r", "kind": "synthetic", "config": {"records": 1}, \#(limit)}"#)
                    #expect(r.status == .unprocessableContent, "\(limit)")
                    let fields = r.json["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? []
                    #expect(fields.contains("rate_limit.requests_per_second"), "\(limit): \(fields)")
                    let patched = try await client.call(.patch, "/v1/sources/kept", "{\(limit)}")
                    #expect(patched.status == .unprocessableContent, "\(limit)")
                }
            }
            for burst in ["1.5", "0", "-9.3e18", "1e19", "100001", "\"1\""] {
                let r = try await client.call(.patch, "/v1/sources/kept", #"{"rate_limit": {"requests_per_second": 5, "burst": \#(burst)}}"#)
                #expect(r.status == .unprocessableContent, "\(burst)")
                #expect(r.json["errors"]?.arrayValue?.first?["field"] == .string("rate_limit.burst"), "\(burst)")
            }
            // A rate at the top of the range gets its default burst.
            let top = try await client.call(.patch, "/v1/sources/kept", #"{"rate_limit": {"requests_per_second": 100000}}"#)
            #expect(top.json["rate_limit"]?["burst"] == .number(100_000))
            #expect(try await client.call(.get, "/healthz").status == .ok)
        }
    }

    /// HEAD answers every GET route like GET, without a body; the 405 lists HEAD too.
    @Test(arguments: StoreBackend.allCases)
    func headAnswersLikeGet(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend).test { client in
            _ = try await client.createSource("h")
            for path in ["/healthz", "/v1/sources", "/v1/sources/h", "/openapi.yaml"] {
                let r = try await client.call(.head, path)
                #expect(r.status == .ok, "\(path)")
                #expect(r.body.readableBytes == 0, "\(path)")
            }
            #expect(try await client.call(.head, "/v1/sources/nope").status == .notFound)
            let refused = try await client.call(.put, "/v1/sources")
            #expect(refused.status == .methodNotAllowed)
            #expect(refused.headers[.allow]?.contains("HEAD") == true, "\(refused.headers)")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func listsArePaginatedWithoutSkipsOrRepeats(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend).test { client in
            for i in 0..<7 { _ = try await client.createSource("s\(i)") }
            var names: [String] = []
            var cursor: String?
            repeat {
                let page = try await client.call(.get, "/v1/sources?limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""))
                #expect(page.status == .ok)
                names += page.json["items"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
                cursor = page.json["next_cursor"]?.stringValue
            } while cursor != nil
            #expect(names == (0..<7).map { "s\($0)" })

            var ids: [String] = []
            for i in 0..<5 {
                ids.append(try #require(try await client.call(.post, "/v1/sources/s\(i)/syncs").json["id"]?.stringValue))
            }
            var seen: [String] = []
            cursor = nil
            repeat {
                let page = try await client.call(.get, "/v1/syncs?limit=2&status=queued" + (cursor.map { "&cursor=\($0)" } ?? ""))
                seen += page.json["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                cursor = page.json["next_cursor"]?.stringValue
            } while cursor != nil
            #expect(seen == ids.reversed())
            let bySource = try await client.call(.get, "/v1/syncs?source_id=\(try #require(try await client.call(.get, "/v1/sources/s0").json["id"]?.stringValue))")
            #expect(bySource.json["items"]?.arrayValue?.count == 1)
            #expect(try await client.call(.get, "/v1/syncs?status=completed").json["items"]?.arrayValue?.isEmpty == true)
        }
    }
}

