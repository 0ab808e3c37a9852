import Foundation
import HummingbirdTesting
import Testing
@testable import SyncConnectors
import SyncCore
import SyncStore
import TestSupport

/// The security defects found from outside: credentials sent across origins or shown in
/// clear, a name that shadows an id, and IPv6 spellings that slipped past the egress policy.
@Suite("Defects found from outside: security")
struct SecurityDefectTests {
    /// A second upstream on another loopback address: another origin.
    func withOtherOrigin<T: Sendable>(_ body: @Sendable (FixtureUpstream) async throws -> T) async throws -> T {
        let other = FixtureUpstream(host: "127.0.0.2")
        try await other.start()
        do {
            let result = try await body(other)
            await other.stop()
            return result
        } catch {
            await other.stop()
            throw error
        }
    }

    /// Item 8: the configured headers follow a redirect only to the same origin, unless the
    /// source opts in; `none` follows no redirect.
    @Test(arguments: [
        (nil as String?, "completed", false, true),
        ("same-origin", "completed", false, true),
        ("any", "completed", true, true),
        ("none", "failed", false, false),
    ])
    func credentialsStayWithTheirOrigin(_ follow: String?, _ status: String, _ sentAcross: Bool, _ reached: Bool) async throws {
        try await withOtherOrigin { other in
            other.script { _ in .json(#"{"rows":[{"id":1}]}"#) }
            try await withHTTPNode(items: 0) { client, fixture, _ in
                fixture.script { r in
                    if r.path == "/same" { return FixtureUpstream.Scripted(status: 302, headers: [("Location", "\(other.baseURL)/s/data")], body: "") }
                    return FixtureUpstream.Scripted(status: 302, headers: [("Location", "/s/same")], body: "")
                }
                let option = follow.map { #", "follow_redirects": "\#($0)""# } ?? ""
                _ = try await client.createHTTPSource("r", #"""
                    {"url": "\#(fixture.baseURL)/s/start", "records_path": "/rows", "primary_key": "id",
                     "headers": {"Authorization": "Bearer s3cr3t", "Cookie": "session=abc"}\#(option)}
                    """#, extra: #", "retry": {"max_attempts": 1}"#)
                let sync = try await client.runSync("r")
                #expect(sync["status"] == .string(status), "\(follow ?? "default"): \(sync["error"] ?? .null)")
                if follow == "none" {
                    #expect(sync["attempts"]?.arrayValue?.first?["error"]?["code"] == .string("upstream_client_error"))
                    #expect(fixture.requests.count == 1)
                } else {
                    // The same-origin hop keeps the headers.
                    #expect(fixture.requests(path: "/s/same").first?.headers["authorization"] == "Bearer s3cr3t")
                }
                #expect(other.requests.isEmpty == !reached)
                if let across = other.requests.first {
                    #expect((across.headers["authorization"] != nil) == sentAcross)
                    #expect((across.headers["cookie"] != nil) == sentAcross)
                    #expect(across.headers["host"] == "127.0.0.2:\(other.port)")
                }
            }
        }
    }

    /// The configured headers go only to the source URL's own origin, whatever names the next
    /// request: a next link (absolute, in the body), a `Link` header, or a page reached after a
    /// redirect that stripped them. A relative next link on a redirected page is resolved
    /// against the URL that served that page.
    @Test(arguments: ["next_url", "link_header", "after a redirect"])
    func configuredHeadersNeverFollowANextLinkToAnotherOrigin(_ how: String) async throws {
        try await withOtherOrigin { other in
            other.script { r in
                switch r.path {
                case "/p2": return FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", #"<p3>; rel="next""#)],
                                                            body: #"{"rows":[{"id":2}],"next_url":"p3"}"#)
                case "/p3": return .json(#"{"rows":[{"id":3}]}"#)
                default: return .json(#"{"rows":[{"id":1}],"next_url":"p2"}"#)
                }
            }
            try await withHTTPNode(items: 0) { client, fixture, _ in
                fixture.script { r in
                    switch how {
                    case "after a redirect":
                        // Page 1 is served by the other origin (a redirect); its relative link names p2 there.
                        return FixtureUpstream.Scripted(status: 302, headers: [("Location", "\(other.baseURL)/s/p1")], body: "")
                    case "link_header":
                        return FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", #"<\#(other.baseURL)/s/p2>; rel="next""#)],
                                                        body: #"{"rows":[{"id":1}]}"#)
                    default:
                        return .json(#"{"rows":[{"id":1}],"next_url":"\#(other.baseURL)/s/p2"}"#)
                    }
                }
                let pagination = how == "link_header" ? #"{"type": "link_header"}"# : #"{"type": "next_url", "path": "/next_url"}"#
                _ = try await client.createHTTPSource("n", #"""
                    {"url": "\#(fixture.baseURL)/s/start", "records_path": "/rows", "primary_key": "id", "pagination": \#(pagination),
                     "headers": {"Authorization": "Bearer s3cr3t", "X-Api-Key": "k3y", "X-Custom": "c"}}
                    """#, extra: #", "retry": {"max_attempts": 1}"#)
                let sync = try await client.runSync("n")
                #expect(sync["status"] == .string("completed"), "\(sync["error"] ?? .null)")
                #expect(sync["progress"]?["records_read"] == .number(3))
                #expect(fixture.requests.first?.headers["authorization"] == "Bearer s3cr3t")
                // p2 and p3 resolve against the other origin, where they were named.
                #expect(Set(other.requests.map(\.path)).isSuperset(of: ["/s/p2", "/s/p3"]), "\(other.requests.map(\.path))")
                for request in other.requests {
                    #expect(request.headers["authorization"] == nil, "\(request.path)")
                    #expect(request.headers["x-api-key"] == nil, "\(request.path)")
                    #expect(request.headers["x-custom"] == nil, "\(request.path)")
                }
            }
        }
    }

    /// Each hop is vetted by the egress policy; more than five redirects, or a redirect to a
    /// non-HTTP URL, fail the attempt.
    @Test(arguments: [
        ("a hop the policy denies", "/s/deny", "egress_blocked"),
        ("six redirects", "/s/hop0", "upstream_client_error"),
        ("a non-HTTP target", "/s/ftp", "upstream_client_error"),
    ])
    func redirectsAreVettedAndBounded(_ name: String, _ path: String, _ code: String) async throws {
        let policy = EgressPolicy(deny: [EgressPolicy.Rule("127.0.0.2/32")!])
        try await withHTTPNode(items: 0, egress: policy) { client, fixture, _ in
            fixture.script { r in
                func redirect(_ to: String) -> FixtureUpstream.Scripted { FixtureUpstream.Scripted(status: 302, headers: [("Location", to)], body: "") }
                switch r.path {
                case "/deny": return redirect("http://127.0.0.2:\(fixture.port)/s/x")
                case "/ftp": return redirect("ftp://127.0.0.1/x")
                default:
                    let n = Int(r.path.dropFirst(4)) ?? 0
                    return n < 6 ? redirect("/s/hop\(n + 1)") : .json(#"{"rows":[]}"#)
                }
            }
            _ = try await client.createHTTPSource("h", #"{"url": "\#(fixture.baseURL)\#(path)", "records_path": "/rows", "primary_key": "id"}"#,
                                                  extra: #", "retry": {"max_attempts": 1}"#)
            let sync = try await client.runSync("h")
            #expect(sync["status"] == .string("failed"), "\(name)")
            let error = sync["attempts"]?.arrayValue?.first?["error"]?["code"] ?? sync["error"]?["code"]
            #expect(error == .string(code), "\(name): \(sync["error"] ?? .null)")
            if name == "six redirects" { #expect(fixture.requests.count == 6) }
        }
    }

    /// Item 11: every IPv6 spelling of an IPv4 address is that address to the egress policy.
    @Test(arguments: ["::ffff:127.0.0.1", "::ffff:7f00:1", "0:0:0:0:0:ffff:127.0.0.1", "[::ffff:127.0.0.1]", "::127.0.0.1", "64:ff9b::7f00:1"])
    func mappedIPv6SpellingsAreMatchedAsIPv4(_ host: String) async throws {
        let policy = EgressPolicy(deny: [EgressPolicy.Rule("127.0.0.1/32")!])
        await #expect(throws: SyncError.self, "\(host)") { _ = try await policy.vet(host: host, port: 80) }
        let mappedRule = EgressPolicy(deny: [EgressPolicy.Rule("::ffff:127.0.0.0/104")!])
        await #expect(throws: SyncError.self, "\(host)") { _ = try await mappedRule.vet(host: "127.0.0.1", port: 80) }
        #expect(try await EgressPolicy.default.vet(host: "::1", port: 80).count == 16)
    }

    @Test func theMetadataAddressInIPv6SpellingIsRefusedAtCreate() async throws {
        try await withHTTPNode(items: 0) { client, _, _ in
            for url in ["http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/latest", "http://[64:ff9b::169.254.169.254]/"] {
                let r = try await client.call(.post, "/v1/sources", #"{"name": "m", "kind": "http-json", "config": {"url": "\#(url)", "primary_key": "id"}}"#)
                #expect(r.status == .forbidden, "\(url): \(String(buffer: r.body))")
            }
        }
    }

    /// A mapped address is fetched (no deny rule), and the Host header keeps its brackets.
    @Test func anIPv6LiteralKeepsItsBracketsInHost() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in .json(#"{"rows":[{"id":1}]}"#) }
            _ = try await client.createHTTPSource("v6", #"{"url": "http://[::ffff:127.0.0.1]:\#(fixture.port)/s/x", "records_path": "/rows", "primary_key": "id"}"#)
            #expect(try await client.runSync("v6")["status"] == .string("completed"))
            #expect(fixture.requests.first?.headers["host"] == "[::ffff:127.0.0.1]:\(fixture.port)")
        }
    }

    /// Item 9: URL userinfo and credential-named parameters are write-only, like headers;
    /// sending back what was shown keeps the stored secrets.
    @Test func credentialsInTheConfigAreNeverShown() async throws {
        try await withHTTPNode(items: 0) { client, fixture, store in
            let url = "http://alice:hunter2@127.0.0.1:\(fixture.port)/d?access_token=tok123&page=1&API-KEY=k9&jwt=jw5&id_bearer=br6"
            let created = try await client.call(.post, "/v1/sources", #"""
                {"name": "sec", "kind": "http-json", "config": {"url": "\#(url)", "primary_key": "id",
                 "query": {"X-Api-Key": "xk1", "auth": "au2", "sig": "sg3", "Signature": "sg4", "author": "bob", "page": 1, "JWT": "jw7"}}}
                """#)
            #expect(created.status == .created)
            for path in ["/v1/sources", "/v1/sources/sec"] {
                let text = String(buffer: try await client.call(.get, path).body)
                for secret in ["hunter2", "alice", "tok123", "k9", "xk1", "au2", "sg3", "sg4", "jw5", "br6", "jw7"] {
                    #expect(!text.contains(secret), "\(path) shows \(secret)")
                }
                #expect(text.contains("bob"))
            }
            let shown = try await client.call(.get, "/v1/sources/sec").json["config"]
            #expect(shown?["url"] == .string("http://***@127.0.0.1:\(fixture.port)/d?access_token=***&page=1&API-KEY=***&jwt=***&id_bearer=***"))
            // Send back what was read: the stored secrets stay.
            let body = try JSONEncoder().encode(JSONValue.object(["config": shown!]))
            #expect(try await client.call(.patch, "/v1/sources/sec", String(decoding: body, as: UTF8.self)).status == .ok)
            let stored = try #require(try await store.source(idOrName: "sec"))
            #expect(stored.config["url"] == .string(url))
            #expect(stored.config["query"]?["X-Api-Key"] == .string("xk1"))
        }
    }

    /// Item 10: a name shaped like an id is refused, so no name shadows another source's id.
    @Test func aNameCannotShadowAnId() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            let a = try await client.createHTTPSource("a", #"{"url": "\#(fixture.baseURL)/none", "primary_key": "id"}"#)
            for name in [a, "src_01JD0000000000000000000000", "SYN_01jd0000000000000000000000"] {
                let r = try await client.call(.post, "/v1/sources", #"{"name": "\#(name)", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/none", "primary_key": "id"}}"#)
                #expect(r.status == .unprocessableContent, "\(name)")
                #expect(r.json["errors"]?.arrayValue?.first?["field"] == .string("name"))
            }
            #expect(try await client.call(.patch, "/v1/sources/a", #"{"name": "\#(a)"}"#).status == .unprocessableContent)
            #expect(try await client.call(.post, "/v1/sources", #"{"name": "src_backup", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/none", "primary_key": "id"}}"#).status == .created)
        }
    }
}
