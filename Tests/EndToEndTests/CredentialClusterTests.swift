import Foundation
import Testing
import SyncCore
import TestSupport

/// One OAuth2 credential with rotating refresh tokens, shared by two sources syncing on
/// three PostgreSQL nodes while nodes are SIGKILLed (docs/credentials.md, "Refreshing").
@Suite("Credentials on a cluster", .serialized)
struct CredentialClusterTests {
    @Test func threeNodesShareOneRotatingCredentialThroughTwentyKills() async throws {
        let dir = try TemporaryDirectory("cluster-oauth")
        defer { dir.remove() }
        // Syncs of ten pages of 100 ms, so both sources run across each token's expiry, and a
        // token endpoint slow enough (300 ms) that refreshes would overlap without the lease.
        let provider = FixtureOAuth2(items: 100, tokenLifetime: 2, tokenDelay: .milliseconds(300), apiDelay: .milliseconds(100))
        try await provider.start()
        defer { Task { await provider.stop() } }
        let database = try await PostgresCluster.shared().createDatabase("oauthc")
        // One worker per node: the two sources run on two nodes, whose refreshes only the lease keeps apart.
        let flags = ["--database", database, "--lease-seconds", "2", "--workers", "1"]
        var nodes: [TributaryProcess] = []
        for index in 1...3 {
            nodes.append(try await TributaryProcess(serve: flags + ["--node-id", "n\(index)"], directory: dir, name: "n\(index)"))
        }
        let client = nodes[0].client
        let made = try await client.post("/v1/credentials", #"""
            {"name": "crm", "type": "oauth2_refresh_token", "config": {"token_url": "\#(provider.tokenURL)", "client_id": "\#(provider.clientID)",
             "client_secret": "\#(provider.clientSecret)", "refresh_token": "\#(provider.grantRefreshToken())"}}
            """#)
        #expect(made.status == 201, "\(made.text)")
        for name in ["a", "b"] {
            let r = try await client.post("/v1/sources", #"""
                {"name": "\#(name)", "kind": "http-json", "credential": "crm", "schedule": {"every_seconds": 1},
                 "retry": {"max_attempts": 10, "initial_delay_seconds": 1, "max_delay_seconds": 2},
                 "config": {"url": "\#(provider.baseURL)/api/items?limit=10", "records_path": "/items", "primary_key": "id",
                            "pagination": {"type": "next_url", "path": "/next"}}}
                """#)
            #expect(r.status == 201, "\(r.text)")
        }

        // About 30 s: a SIGKILL of a random node every 1.3 s (20 in all), each restarted at once.
        // A node killed while its refresh is in flight loses the token the endpoint rotated
        // (the documented window): the provider then revokes the family when the stored token
        // comes again, and the credential must say needs_reauth; the test consents again (a
        // PATCH with a new refresh token), as a user would.
        var generator = SeededGenerator(seed: 26)
        var kills = 0
        var consents = 0
        let started = ContinuousClock.now
        @Sendable func status(_ client: APIClient) async throws -> String { try await client.get("/v1/credentials/crm").json["status"]?.stringValue ?? "" }
        func consentAgainIfRevoked(_ client: APIClient) async throws {
            guard provider.reuses > consents else { return }
            _ = try await eventually(timeout: .seconds(10), every: .milliseconds(50)) { try await status(client) == "needs_reauth" ? true : nil }
            let r = try await client.request(.PATCH, "/v1/credentials/crm", json: #"{"config": {"refresh_token": "\#(provider.grantRefreshToken())"}}"#)
            #expect(r.status == 200, "\(r.text)")
            consents += 1
        }
        while kills < 20 {
            try await Task.sleep(for: .milliseconds(1300))
            let index = Int.random(in: 0..<3, using: &generator)
            await nodes[index].kill()
            kills += 1
            nodes[index] = try await TributaryProcess(serve: flags + ["--node-id", "n\(index + 1)"], directory: dir, name: "n\(index + 1)-\(kills)")
            try await consentAgainIfRevoked(nodes[(index + 1) % 3].client)
        }
        // Quiet now: each source's next sync must complete with every record.
        let live = nodes[0].client
        for name in ["a", "b"] {
            _ = try await live.request(.PATCH, "/v1/sources/\(name)", json: #"{"schedule": null}"#)
        }
        try await Task.sleep(for: .seconds(6))
        try await consentAgainIfRevoked(live)
        let ran = ContinuousClock.now - started
        let credential = try await live.get("/v1/credentials/crm").json
        print("credential cluster: \(kills) kills in \(ran), \(provider.refreshes.count) refreshes (\(provider.refreshes.filter { $0.outcome == "rotated" }.count) rotated), "
              + "\(provider.reuses) reuses \(provider.reuseGaps) answered by \(consents) new consents, most at once \(provider.mostRefreshesAtOnce), "
              + "\(provider.apiOutcomes.count) API requests (\(provider.apiOutcomes.filter { $0 == "expired" }.count) with an expired token)")
        #expect(kills == 20)
        #expect(provider.mostRefreshesAtOnce == 1, "never two refreshes of the credential at once")
        let outcomes = provider.apiOutcomes
        // Two sources sync at once, so each may send one request with the token that just
        // expired; a third in a row would be a flow that kept using it after its 401.
        let runs = outcomes.split { $0 != "expired" }.map(\.count)
        #expect((runs.max() ?? 0) <= 2, "expired-token requests in a row: \(runs)")
        // Every reuse came from a node that died mid-refresh: its lease (5 s) had ended.
        #expect(provider.reuseGaps.allSatisfy { $0 >= .seconds(4) }, "a refresh token used again by a live node: \(provider.reuseGaps)")
        #expect(credential["status"] == .string("active"), "\(credential)")
        for name in ["a", "b"] {
            let id = try await eventually(timeout: .seconds(30), every: .milliseconds(100)) { () -> String? in
                let r = try await live.post("/v1/sources/\(name)/syncs")
                return r.status == 202 ? r.json["id"]?.stringValue : nil
            }
            let done = try await eventually(timeout: .seconds(60), every: .milliseconds(100)) { () -> JSONValue? in
                let s = try await live.get("/v1/syncs/\(id)").json
                return ["completed", "failed", "cancelled"].contains(s["status"]?.stringValue ?? "") ? s : nil
            }
            #expect(done["status"] == .string("completed"), "\(done)")
            let records = try await live.get("/v1/sources/\(name)/records?limit=1000").json["items"]?.arrayValue ?? []
            #expect(Set(records.compactMap { $0["key"]?.stringValue }) == Set((1...100).map(String.init)))
            #expect(records.count == 100)
        }
        for node in nodes where node.isRunning { #expect(try await node.terminate() == 0) }
    }
}
