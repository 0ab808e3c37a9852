import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
import SyncConnectors
import SyncCore
import SyncStore
import TestSupport

/// Credentials (docs/credentials.md): the resource, its write-only secrets, where its
/// authorization goes, and OAuth2 against a real token endpoint that rotates refresh tokens.
@Suite("Credentials")
struct CredentialTests {
    @Test(arguments: StoreBackend.allCases)
    func secretsAreWriteOnlyAndMaskSentBackKeepsThem(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 3, backend: backend) { client, fixture, _ in
            let created = try await client.call(.post, "/v1/credentials", #"{"name": "crm-key", "type": "bearer", "config": {"token": "tok-secret-1"}}"#)
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let id = try #require(created.json["id"]?.stringValue)
            #expect(id.hasPrefix("cred_") && id.count == 31)
            #expect(created.json["config"]?["token"] == .string("***"))
            #expect(!String(buffer: created.body).contains("tok-secret-1"))
            #expect(created.headers[.location] == "/v1/credentials/\(id)")
            // By name, by id, in the list: never the secret.
            for path in ["/v1/credentials/crm-key", "/v1/credentials/\(id)", "/v1/credentials"] {
                let r = try await client.call(.get, path)
                #expect(r.status == .ok && !String(buffer: r.body).contains("tok-secret-1"), "\(path)")
            }
            // Sent back as shown (with a new name): the stored token stays, and it is what the upstream gets.
            let shown = try await client.call(.get, "/v1/credentials/\(id)").json
            var back = shown.objectValue ?? [:]
            back["name"] = .string("crm-key-2")
            for key in ["id", "status", "status_reason", "sources", "created_at", "updated_at", "token_expires_at", "last_refresh_at", "refreshes"] {
                back.removeValue(forKey: key)
            }
            let patched = try await client.call(.patch, "/v1/credentials/\(id)", String(decoding: JSONWriter.bytes(.object(back)), as: UTF8.self))
            #expect(patched.status == .ok, "\(String(buffer: patched.body))")
            #expect(patched.json["name"] == .string("crm-key-2"))
            let source = try await client.createHTTPSource("crm", #"{"url": "\#(fixture.baseURL)/next?size=2", "pagination": {"type": "next_url", "path": "/next_url"}, "records_path": "/rows", "primary_key": "id"}"#,
                                                           extra: #", "credential": "crm-key-2""#)
            let sync = try await client.runSync(source)
            #expect(sync["status"] == .string("completed"), "\(sync)")
            let sent = fixture.requests(path: "/next").map { $0.headers["authorization"] ?? "" }
            #expect(!sent.isEmpty && sent.allSatisfy { $0 == "Bearer tok-secret-1" }, "\(sent)")
            #expect(try await client.call(.get, "/v1/sources/\(source)").json["credential"] == .string(id))
            #expect(try await client.call(.get, "/v1/credentials/\(id)").json["sources"] == .number(1))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aCredentialInUseCannotBeDeleted(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 1, backend: backend) { client, fixture, _ in
            _ = try await client.call(.post, "/v1/credentials", #"{"name": "k", "type": "api_key", "config": {"name": "X-Key", "value": "v"}}"#)
            let made = try await client.call(.post, "/v1/credentials", #"{"name": "k2", "type": "basic", "config": {"username": "u", "password": "p"}}"#)
            let id = try #require(made.json["id"]?.stringValue)
            let source = try await client.createHTTPSource("s", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id"}"#, extra: #", "credential": "k2""#)
            let refused = try await client.call(.delete, "/v1/credentials/\(id)")
            #expect(refused.status == .conflict)
            #expect(refused.json["code"] == .string("credential_in_use"))
            #expect(refused.json["source_id"] == .string(source))
            // Unlinked, it goes.
            #expect(try await client.call(.patch, "/v1/sources/\(source)", #"{"credential": null}"#).status == .ok)
            #expect(try await client.call(.delete, "/v1/credentials/\(id)").status == .noContent)
            #expect(try await client.call(.get, "/v1/credentials/\(id)").status == .notFound)
        }
    }

    @Test func badCredentialsAreRefusedWithEveryFieldNamed() async throws {
        try await withHTTPNode(items: 0) { client, _, _ in
            let cases: [(String, [String])] = [
                (#"{"name": "a", "type": "bearer", "config": {}}"#, ["config.token"]),
                (#"{"name": "a", "type": "bearer"}"#, ["config"]),
                (#"{"name": "a", "type": "bearer", "config": {"token": "***"}}"#, ["config.token"]),
                (#"{"name": "a", "type": "bearer", "config": {"token": "x\ny"}}"#, ["config.token"]),
                (#"{"name": "a", "type": "bearer", "config": {"token": ""}}"#, ["config.token"]),
                (#"{"name": "a", "type": "nope", "config": {}}"#, ["type"]),
                (#"{"type": "bearer", "config": {"token": "t"}}"#, ["name"]),
                (#"{"name": "cred_01ARZ3NDEKTSV4RRFFQ69G5FAV", "type": "bearer", "config": {"token": "t"}}"#, ["name"]),
                (#"{"name": "a", "type": "bearer", "config": {"token": "t", "password": "p"}}"#, ["config.password"]),
                (#"{"name": "a", "type": "bearer", "config": {"token": "t"}, "secret": 1}"#, ["secret"]),
                (#"{"name": "a", "type": "api_key", "config": {"in": "cookie", "name": "X", "value": "v"}}"#, ["config.in"]),
                (#"{"name": "a", "type": "api_key", "config": {"name": "X Y", "value": "v"}}"#, ["config.name"]),
                (#"{"name": "a", "type": "basic", "config": {"username": "a:b", "password": "p"}}"#, ["config.username"]),
                (#"{"name": "a", "type": "oauth2_client_credentials", "config": {"client_id": "c", "client_secret": "s", "token_url": "ftp://x"}}"#, ["config.token_url"]),
                (#"{"name": "a", "type": "oauth2_refresh_token", "config": {"client_id": "c", "token_url": "http://127.0.0.1:9/t"}}"#, ["config.refresh_token"]),
                (#"{"name": "a", "type": "oauth2_client_credentials", "config": {"client_id": "c", "client_secret": "s", "token_url": "http://127.0.0.1:9/t", "extra_params": {"grant_type": "password"}}}"#, ["config.extra_params.grant_type"]),
                (#"{"name": "a", "type": "oauth2_client_credentials", "config": {"client_id": "c", "client_secret": "s", "token_url": "http://127.0.0.1:9/t", "scopes": [1]}}"#, ["config.scopes"]),
                (#"{"name": "a", "type": "oauth2_client_credentials", "config": {"client_id": "c", "client_secret": "s", "token_url": "http://127.0.0.1:9/t?client_secret=x"}}"#, ["config.token_url"]),
                (#"{"name": "a", "type": "oauth2_client_credentials", "config": {"client_id": "c", "client_secret": "s", "token_url": "http://127.0.0.1:9/t", "extra_params": {"password": "***"}}}"#, ["config.extra_params.password"]),
                (#"{"name": "a", "type": "api_key", "config": {"name": "Host", "value": "v"}}"#, ["config.name"]),
                (#"{"name": "a", "type": "api_key", "config": {"name": "Content-Length", "value": "v"}}"#, ["config.name"]),
                (#"{"name": "a", "type": "bearer", "config": {"token": "a\u0085b"}}"#, ["config.token"]),
                (#"{"name": "a", "type": "bearer", "config": {"token": "a\u2028b"}}"#, ["config.token"]),
            ]
            for (body, fields) in cases {
                let r = try await client.call(.post, "/v1/credentials", body)
                #expect(r.status == .unprocessableContent, "\(body) → \(r.status)")
                let named = (r.json["errors"]?.arrayValue ?? []).compactMap { $0["field"]?.stringValue }
                for field in fields { #expect(named.contains(field), "\(body): \(named)") }
            }
            // A source naming a credential that does not exist.
            let r = try await client.call(.post, "/v1/sources", #"{"name": "s", "kind": "synthetic", "config": {"records": 1}, "credential": "ghost"}"#)
            #expect(r.status == .unprocessableContent && String(buffer: r.body).contains("credential"))
        }
    }

    /// The credential's authorization goes to the source URL's origin only: a next link to
    /// another origin gets neither the header nor the key in its query.
    @Test(arguments: ["bearer", "basic", "header", "query"])
    func authorizationReachesOnlyTheSourcesOrigin(_ shape: String) async throws {
        let other = FixtureUpstream(items: 3, host: "127.0.0.2")
        try await other.start()
        defer { Task { await other.stop() } }
        try await withHTTPNode(items: 3) { client, fixture, _ in
            let body = switch shape {
            case "bearer": #"{"name": "c", "type": "bearer", "config": {"token": "s3cret-bearer"}}"#
            case "basic": #"{"name": "c", "type": "basic", "config": {"username": "ann", "password": "s3cret-pw"}}"#
            case "header": #"{"name": "c", "type": "api_key", "config": {"in": "header", "name": "X-Api-Key", "value": "s3cret-key"}}"#
            default: #"{"name": "c", "type": "api_key", "config": {"in": "query", "name": "api_key", "value": "s3cret-key"}}"#
            }
            #expect(try await client.call(.post, "/v1/credentials", body).status == .created)
            fixture.script { _ in .json(#"{"rows": [{"id": 1}], "next_url": "\#(other.baseURL)/next?size=10"}"#) }
            let source = try await client.createHTTPSource("s", #"{"url": "\#(fixture.baseURL)/s/start", "pagination": {"type": "next_url", "path": "/next_url"}, "records_path": "/rows", "primary_key": "id"}"#,
                                                           extra: #", "credential": "c""#)
            let sync = try await client.runSync(source)
            #expect(sync["status"] == .string("completed"), "\(sync)")
            let own = try #require(fixture.requests.first { $0.path.hasPrefix("/s") })
            switch shape {
            case "bearer": #expect(own.headers["authorization"] == "Bearer s3cret-bearer")
            case "basic": #expect(own.headers["authorization"] == "Basic " + Data("ann:s3cret-pw".utf8).base64EncodedString())
            case "header": #expect(own.headers["x-api-key"] == "s3cret-key")
            default: #expect(own.query.contains("api_key=s3cret-key"), "\(own.query)")
            }
            let foreign = other.requests
            #expect(!foreign.isEmpty)
            for request in foreign {
                #expect(request.headers["authorization"] == nil && request.headers["x-api-key"] == nil)
                #expect(!request.query.contains("s3cret"), "\(request.query)")
            }
            // Nor does the sync's record of where it read show the key.
            #expect(!String(describing: sync).contains("s3cret"))
        }
    }

    /// An upstream that echoes a query key into its next links, whatever the parameter is
    /// called (`appid`, not a secret's name): the key is masked in the stored checkpoint and
    /// in an error quoting the link, and the next page still gets the real key.
    @Test func aKeyTheUpstreamEchoesIsMaskedInCheckpointsAndErrors() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            let key = "appid-key-\(UUID().uuidString)"
            #expect(try await client.call(.post, "/v1/credentials", #"{"name": "c", "type": "api_key", "config": {"in": "query", "name": "appid", "value": "\#(key)"}}"#).status == .created)
            fixture.script { request in
                switch request.path {
                case "/p1": .json(#"{"rows": [{"id": 1}], "next_url": "/s/p2?\#(request.rawQuery)"}"#)
                case "/p2": .json(#"{"rows": [{"id": 2}], "next_url": "http://127.0.0.1:0/x?\#(request.rawQuery)"}"#)
                default: .json(#"{"rows": []}"#)
                }
            }
            let source = try await client.createHTTPSource("s", #"{"url": "\#(fixture.baseURL)/s/p1", "pagination": {"type": "next_url", "path": "/next_url"}, "records_path": "/rows", "primary_key": "id", "max_request_retries": 0}"#,
                                                           extra: #", "credential": "c", "retry": {"max_attempts": 1}"#)
            let sync = try await client.runSync(source)
            #expect(sync["status"] == .string("failed"), "\(sync)")
            #expect(sync["error"]?["code"] == .string("invalid_response"))
            let shown = String(buffer: try await client.call(.get, "/v1/syncs/\(sync["id"]?.stringValue ?? "")").body)
            #expect(!shown.contains(key), "\(shown)")
            #expect(shown.contains("appid=***"), "\(shown)")
            // Page 2 was asked for with the real key (set again from the credential).
            #expect(fixture.requests.first { $0.path == "/s/p2" }?.query.contains("appid=" + key) == true)
        }
    }

    /// A token endpoint the egress policy blocks is refused when the credential is written.
    @Test func aTokenEndpointTheEgressPolicyBlocksIsRefused() async throws {
        let policy = EgressPolicy(deny: [EgressPolicy.Rule("10.0.0.0/8")!])
        try await withHTTPNode(items: 0, egress: policy) { client, _, _ in
            let r = try await client.call(.post, "/v1/credentials", #"""
                {"name": "m2m", "type": "oauth2_client_credentials", "config": {"token_url": "http://10.1.2.3/token", "client_id": "c", "client_secret": "s"}}
                """#)
            #expect(r.status == .forbidden, "\(String(buffer: r.body))")
            #expect(try await client.call(.get, "/v1/credentials").json["items"]?.arrayValue?.isEmpty == true)
        }
    }

    /// A URL sent back with its secret as `***` and another part changed keeps the stored
    /// secret; a `***` with nothing stored to keep is refused, never sent upstream.
    @Test func aURLPatchedWithItsSecretMaskedKeepsTheSecret() async throws {
        try await withHTTPNode(items: 2) { client, fixture, _ in
            let source = try await client.createHTTPSource("q", #"{"url": "\#(fixture.baseURL)/none?access_token=tok-kept-42", "records_path": "/rows", "primary_key": "id"}"#)
            let patched = try await client.call(.patch, "/v1/sources/q", #"{"config": {"url": "\#(fixture.baseURL)/none?access_token=***&x=2"}}"#)
            #expect(patched.status == .ok, "\(String(buffer: patched.body))")
            #expect(try await client.runSync(source)["status"] == .string("completed"))
            #expect(fixture.requests(path: "/none").last?.query.contains("access_token=tok-kept-42") == true)
            #expect(fixture.requests(path: "/none").last?.query.contains("x=2") == true)
            let refused = try await client.call(.patch, "/v1/sources/q", #"{"config": {"url": "\#(fixture.baseURL)/none?access_token=***&api_key=***"}}"#)
            #expect(refused.status == .unprocessableContent, "\(String(buffer: refused.body))")
            let masked = try await client.call(.post, "/v1/sources", #"{"name": "m", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id", "headers": {"Authorization": "***"}}}"#)
            #expect(masked.status == .unprocessableContent)
        }
    }
}
