import Foundation
import Testing
import SyncCore
import TestSupport

/// Secrets at rest on the real binary (docs/credentials.md, "Secrets at rest"): with a key,
/// neither the SQLite file nor a pg_dump holds a credential's secret or a token in clear; a
/// node without the key refuses with one line; `secrets rotate` moves them to a new key.
@Suite("Secrets at rest")
struct SecretsAtRestProcessTests {
    static func writeKey(_ dir: TemporaryDirectory, _ name: String) throws -> String {
        let path = dir.file(name)
        let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        try key.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Makes an OAuth2 and a bearer credential and syncs through the OAuth2 one (so a token
    /// is cached); returns the secrets the database must not show.
    static func populate(_ node: TributaryProcess, _ provider: FixtureOAuth2) async throws -> [String] {
        let client = node.client
        let bearer = "bearer-\(UUID().uuidString)"
        var r = try await client.post("/v1/credentials", #"{"name": "static", "type": "bearer", "config": {"token": "\#(bearer)"}}"#)
        #expect(r.status == 201, "\(r.text)")
        r = try await client.post("/v1/credentials", #"""
            {"name": "crm", "type": "oauth2_refresh_token", "config": {"token_url": "\#(provider.tokenURL)", "client_id": "\#(provider.clientID)",
             "client_secret": "\#(provider.clientSecret)", "refresh_token": "\#(provider.grantRefreshToken())"}}
            """#)
        #expect(r.status == 201, "\(r.text)")
        // The source's own secrets too: a header value and a webhook's secret.
        let header = "hdr-\(UUID().uuidString)", hook = "whsec-\(UUID().uuidString)"
        r = try await client.post("/v1/sources", #"""
            {"name": "items", "kind": "http-json", "credential": "crm", "config": {"url": "\#(provider.baseURL)/api/items?limit=10",
             "records_path": "/items", "primary_key": "id", "pagination": {"type": "next_url", "path": "/next"}, "headers": {"X-Extra": "\#(header)"}},
             "notify": [{"url": "\#(provider.baseURL)/hooks", "secret": "\#(hook)"}]}
            """#)
        #expect(r.status == 201, "\(r.text)")
        try await syncs(client, count: 1)
        return [bearer, header, hook] + provider.everySecret
    }

    static func syncs(_ client: APIClient, count: Int) async throws {
        for _ in 0..<count {
            let r = try await client.post("/v1/sources/items/syncs")
            let id = try #require(r.json["id"]?.stringValue, "\(r.text)")
            let done = try await eventually(timeout: .seconds(30), every: .milliseconds(50)) { () -> JSONValue? in
                let s = try await client.get("/v1/syncs/\(id)").json
                return ["completed", "failed", "cancelled"].contains(s["status"]?.stringValue ?? "") ? s : nil
            }
            #expect(done["status"] == .string("completed"), "\(done)")
        }
    }

    static func leaked(_ secrets: [String], in text: String) -> [String] { secrets.filter { text.contains($0) } }

    @Test func sqliteFileHoldsNoSecretAndRotationMovesThemToTheNewKey() async throws {
        let dir = try TemporaryDirectory("e2e-secrets")
        defer { dir.remove() }
        let provider = FixtureOAuth2(items: 15, tokenLifetime: 60)
        try await provider.start()
        defer { Task { await provider.stop() } }
        let keyA = try Self.writeKey(dir, "a.key"), keyB = try Self.writeKey(dir, "b.key")
        let db = "sqlite:" + dir.file("t.sqlite")

        let node = try await TributaryProcess(serve: ["--database", db, "--secret-key-file", keyA], directory: dir)
        let secrets = try await Self.populate(node, provider)
        let health = try await node.client.get("/v1/health").json
        #expect(health["secrets"]?["at_rest"] == .string("sealed"))
        #expect(try await node.terminate() == 0)
        for file in ["t.sqlite", "t.sqlite-wal"] {
            let bytes = FileManager.default.contents(atPath: dir.file(file)) ?? Data()
            #expect(Self.leaked(secrets, in: String(decoding: bytes, as: UTF8.self)).isEmpty, "\(file)")
        }
        #expect(Self.leaked(secrets, in: node.log).isEmpty)

        // Without the key: one line naming the key it lacks, and a non-zero exit.
        let (code, out) = try await runTributary(["serve", "--port", "0", "--database", db], directory: dir)
        #expect(code != 0)
        let lines = out.split(separator: "\n").filter { $0.contains("sealed with key") }
        #expect(lines.count == 1, "\(out)")

        // Rotation to B (A still opens), then B alone serves and syncs.
        let (rotated, said) = try await runTributary(["secrets", "rotate", "--database", db, "--secret-key-file", keyB, "--secret-key-file", keyA], directory: dir)
        #expect(rotated == 0, "\(said)")
        let rows = said.split(separator: " ").compactMap { Int($0) }.first ?? 0
        #expect(said.contains("sealed the secrets of") && rows >= 4, "2 credentials, a source, a delivery at least: \(said)")
        let onB = try await TributaryProcess(serve: ["--database", db, "--secret-key-file", keyB], directory: dir, name: "b")
        try await Self.syncs(onB.client, count: 1)
        #expect(try await onB.terminate() == 0)
        let (refused, _) = try await runTributary(["serve", "--port", "0", "--database", db, "--secret-key-file", keyA], directory: dir)
        #expect(refused != 0, "key A alone no longer opens what B sealed")

        // Back to the clear: B only opens; then a node without any key serves.
        let (cleared, clearSaid) = try await runTributary(["secrets", "rotate", "--clear", "--database", db, "--secret-key-file", keyB], directory: dir)
        #expect(cleared == 0, "\(clearSaid)")
        let keyless = try await TributaryProcess(serve: ["--database", db], directory: dir, name: "clear")
        try await Self.syncs(keyless.client, count: 1)
        #expect(try await keyless.client.get("/v1/health").json["secrets"]?["at_rest"] == .string("clear"))
        #expect(try await keyless.terminate() == 0)
    }

    @Test func pgDumpHoldsNoSecretAndAKeyInTheEnvironmentWorks() async throws {
        let dir = try TemporaryDirectory("e2e-secrets-pg")
        defer { dir.remove() }
        let provider = FixtureOAuth2(items: 15, tokenLifetime: 60)
        try await provider.start()
        defer { Task { await provider.stop() } }
        let url = try await PostgresCluster.shared().createDatabase("secrets")
        let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let node = try await TributaryProcess(serve: ["--database", url], directory: dir, environment: ["TRIBUTARY_SECRET_KEY": key])
        let secrets = try await Self.populate(node, provider)
        #expect(try await node.terminate() == 0)
        let dump = try await PostgresCluster.dump(url)
        #expect(dump.contains("enc:v1:"), "the dump holds the sealed values")
        #expect(Self.leaked(secrets, in: dump).isEmpty)
    }

    /// Rotation from key A to key B while a node (holding B, then A) syncs every second with a
    /// rotating OAuth2 credential: every sync completes, no refresh token is presented twice,
    /// and a node with B alone serves afterwards.
    @Test func rotationWhileSyncsRunLosesNothing() async throws {
        let dir = try TemporaryDirectory("e2e-secrets-live")
        defer { dir.remove() }
        let provider = FixtureOAuth2(items: 15, tokenLifetime: 1)
        try await provider.start()
        defer { Task { await provider.stop() } }
        let keyA = try Self.writeKey(dir, "a.key"), keyB = try Self.writeKey(dir, "b.key")
        let db = "sqlite:" + dir.file("live.sqlite")
        let onA = try await TributaryProcess(serve: ["--database", db, "--secret-key-file", keyA], directory: dir, name: "a")
        _ = try await Self.populate(onA, provider)
        #expect(try await onA.terminate() == 0)
        let both = try await TributaryProcess(serve: ["--database", db, "--secret-key-file", keyB, "--secret-key-file", keyA], directory: dir, name: "ba")
        _ = try await both.client.request(.PATCH, "/v1/sources/items", json: #"{"schedule": {"every_seconds": 1}}"#)
        try await Task.sleep(for: .seconds(2))
        for _ in 0..<3 {
            let (code, said) = try await runTributary(["secrets", "rotate", "--database", db, "--secret-key-file", keyB, "--secret-key-file", keyA], directory: dir)
            #expect(code == 0, "\(said)")
            try await Task.sleep(for: .seconds(1.5))
        }
        _ = try await both.client.request(.PATCH, "/v1/sources/items", json: #"{"schedule": null}"#)
        try await Task.sleep(for: .seconds(2))
        let history = try await both.client.get("/v1/syncs?source=items&limit=100").json["items"]?.arrayValue ?? []
        let finished = history.filter { ["completed", "failed"].contains($0["status"]?.stringValue ?? "") }
        #expect(finished.count >= 4, "\(history.count) syncs")
        #expect(finished.allSatisfy { $0["status"] == .string("completed") }, "\(finished.filter { $0["status"] != .string("completed") })")
        #expect(provider.reuses == 0)
        #expect(try await both.terminate() == 0)
        let onB = try await TributaryProcess(serve: ["--database", db, "--secret-key-file", keyB], directory: dir, name: "b-only")
        try await Self.syncs(onB.client, count: 1)
        #expect(try await onB.terminate() == 0)
    }
}
