import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// OAuth2 credentials against a real token endpoint (``FixtureOAuth2``): 2-second access
/// tokens, refresh tokens that rotate on every use, and a reuse that revokes the family.
@Suite("OAuth2 credentials")
struct OAuth2Tests {
    static func withProvider<T: Sendable>(items: Int, backend: StoreBackend = .sqlite, tokenLifetime: Double = 2,
                                          _ body: @Sendable (any TestClientProtocol, FixtureOAuth2, any SyncStore) async throws -> T) async throws -> T {
        let provider = FixtureOAuth2(items: items, tokenLifetime: tokenLifetime)
        try await provider.start()
        defer { Task { await provider.stop() } }
        return try await withHTTPNode(items: 0, backend: backend) { client, _, store in try await body(client, provider, store) }
    }

    static func source(_ client: any TestClientProtocol, _ provider: FixtureOAuth2, name: String, credential: String) async throws -> String {
        try await client.createHTTPSource(name, #"""
            {"url": "\#(provider.baseURL)/api/items?limit=10", "records_path": "/items", "primary_key": "id",
             "pagination": {"type": "next_url", "path": "/next"}}
            """#, extra: #", "credential": "\#(credential)""#)
    }

    static func refreshCredential(_ provider: FixtureOAuth2, name: String = "crm", refreshToken: String) -> String {
        #"""
        {"name": "\#(name)", "type": "oauth2_refresh_token", "config": {"token_url": "\#(provider.tokenURL)",
         "client_id": "\#(provider.clientID)", "client_secret": "\#(provider.clientSecret)", "refresh_token": "\#(refreshToken)"}}
        """#
    }

    @Test(arguments: StoreBackend.allCases)
    func clientCredentialsTokenIsReusedWhileItLives(_ backend: StoreBackend) async throws {
        try await Self.withProvider(items: 25, backend: backend, tokenLifetime: 60) { client, provider, _ in
            let made = try await client.call(.post, "/v1/credentials", #"""
                {"name": "m2m", "type": "oauth2_client_credentials", "config": {"token_url": "\#(provider.tokenURL)",
                 "client_id": "\#(provider.clientID)", "client_secret": "\#(provider.clientSecret)", "scopes": ["read", "write"], "client_auth": "body"}}
                """#)
            #expect(made.status == .created, "\(String(buffer: made.body))")
            let source = try await Self.source(client, provider, name: "items", credential: "m2m")
            let first = try await client.runSync(source)
            #expect(first["status"] == .string("completed"), "\(first)")
            #expect(first["progress"]?["records_created"] == .number(25))
            #expect(provider.clientGrants == 1, "three pages, one token")
            _ = try await client.runSync(source)
            #expect(provider.clientGrants == 1, "a token of 60 s is reused by the next sync")
            #expect(provider.apiOutcomes.allSatisfy { $0 == "ok" }, "\(provider.apiOutcomes)")
            let shown = try await client.call(.get, "/v1/credentials/m2m")
            #expect(shown.json["refreshes"] == .number(1))
            #expect(shown.json["token_expires_at"]?.stringValue != nil)
            #expect(!provider.everySecret.contains { String(buffer: shown.body).contains($0) })
        }
    }

    /// Tokens of three seconds, a sync every 3.2 s: each sync after the first finds its token
    /// expired and gets a new one before any request; the API never sees an expired one.
    @Test func aTokenNearItsExpiryIsReplacedBeforeUse() async throws {
        try await Self.withProvider(items: 5, tokenLifetime: 3) { client, provider, _ in
            _ = try await client.call(.post, "/v1/credentials", #"""
                {"name": "m2m", "type": "oauth2_client_credentials", "config": {"token_url": "\#(provider.tokenURL)",
                 "client_id": "\#(provider.clientID)", "client_secret": "\#(provider.clientSecret)"}}
                """#)
            let source = try await Self.source(client, provider, name: "items", credential: "m2m")
            for round in 1...3 {
                #expect(try await client.runSync(source)["status"] == .string("completed"))
                #expect(provider.clientGrants == round)
                try await Task.sleep(for: .seconds(3.2))
            }
            #expect(!provider.apiOutcomes.contains("expired"), "\(provider.apiOutcomes)")
        }
    }

    /// Rotating refresh tokens: every refresh's new refresh token is stored before it is
    /// used, so none is ever presented twice, even with two sources syncing at once.
    @Test(arguments: StoreBackend.allCases)
    func rotatingRefreshTokensAreNeverReused(_ backend: StoreBackend) async throws {
        try await Self.withProvider(items: 40, backend: backend) { client, provider, _ in
            let made = try await client.call(.post, "/v1/credentials", Self.refreshCredential(provider, refreshToken: provider.grantRefreshToken()))
            #expect(made.status == .created, "\(String(buffer: made.body))")
            let a = try await Self.source(client, provider, name: "a", credential: "crm")
            let b = try await Self.source(client, provider, name: "b", credential: "crm")
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                async let x = client.runSync(a)
                async let y = client.runSync(b)
                let (sx, sy) = try await (x, y)
                #expect(sx["status"] == .string("completed") && sy["status"] == .string("completed"), "\(sx) \(sy)")
            }
            #expect(provider.reuses == 0)
            #expect(provider.mostRefreshesAtOnce == 1)
            let outcomes = provider.apiOutcomes
            #expect(!zip(outcomes, outcomes.dropFirst()).contains { $0 == "expired" && $1 == "expired" }, "\(outcomes)")
            #expect(provider.refreshes.count >= 2, "tokens of 2 s over 5 s")
            #expect(provider.refreshes.allSatisfy { $0.outcome == "rotated" })
            let shown = try await client.call(.get, "/v1/credentials/crm").json
            #expect(shown["status"] == .string("active"))
            #expect(shown["refreshes"] == .number(Double(provider.refreshes.count)))
        }
    }

    /// The provider forgot its access tokens: the upstream's 401 makes one refresh, and the
    /// request goes again with the new token.
    @Test func aRejectedTokenIsRefreshedOnceAndTheRequestSentAgain() async throws {
        try await Self.withProvider(items: 5) { client, provider, _ in
            _ = try await client.call(.post, "/v1/credentials", Self.refreshCredential(provider, refreshToken: provider.grantRefreshToken()))
            let source = try await Self.source(client, provider, name: "s", credential: "crm")
            #expect(try await client.runSync(source)["status"] == .string("completed"))
            provider.forgetAccessTokens()
            let again = try await client.runSync(source)
            #expect(again["status"] == .string("completed"), "\(again)")
            #expect(again["attempt"] == .number(1))
            #expect(provider.refreshes.count == 2)
            #expect(Array(provider.apiOutcomes.suffix(2)) == ["unknown", "ok"], "\(provider.apiOutcomes)")
        }
    }

    /// `invalid_grant` puts the credential in needs_reauth: its syncs fail at once, not
    /// retried; new secrets clear it.
    @Test(arguments: StoreBackend.allCases)
    func invalidGrantNeedsReauthUntilNewSecretsAreGiven(_ backend: StoreBackend) async throws {
        try await Self.withProvider(items: 5, backend: backend) { client, provider, _ in
            _ = try await client.call(.post, "/v1/credentials", Self.refreshCredential(provider, refreshToken: provider.grantRefreshToken()))
            let source = try await Self.source(client, provider, name: "s", credential: "crm")
            _ = try await client.call(.patch, "/v1/sources/s", #"{"retry": {"max_attempts": 5, "initial_delay_seconds": 1}}"#)
            #expect(try await client.runSync(source)["status"] == .string("completed"))
            provider.revokeEverything()
            try await Task.sleep(for: .seconds(2.1))
            let failed = try await client.runSync(source)
            #expect(failed["status"] == .string("failed"), "\(failed)")
            #expect(failed["error"]?["code"] == .string("upstream_auth_failed"))
            #expect(failed["attempt"] == .number(1), "not retried")
            #expect(failed["error"]?["message"]?.stringValue?.contains("invalid_grant") == true, "\(failed)")
            let stuck = try await client.call(.get, "/v1/credentials/crm").json
            #expect(stuck["status"] == .string("needs_reauth"))
            #expect(stuck["status_reason"]?.stringValue?.contains("invalid_grant") == true)
            #expect(try await client.call(.get, "/v1/sources/s").json["health"] == .string("needs_reauth"))
            #expect(try await client.call(.get, "/v1/sources?limit=10").json["items"]?.arrayValue?.first?["health"] == .string("needs_reauth"))
            // Fails at once now, without asking the token endpoint again.
            let before = provider.refreshes.count
            #expect(try await client.runSync(source)["error"]?["code"] == .string("upstream_auth_failed"))
            #expect(provider.refreshes.count == before)
            // New consent: a PATCH with the new refresh token.
            let patched = try await client.call(.patch, "/v1/credentials/crm", #"{"config": {"refresh_token": "\#(provider.grantRefreshToken())"}}"#)
            #expect(patched.json["status"] == .string("active"), "\(String(buffer: patched.body))")
            #expect(try await client.runSync(source)["status"] == .string("completed"))
            #expect(try await client.call(.get, "/v1/sources/s").json["health"] == .string("ok"))
        }
    }

    /// A hostile token endpoint: an error description that echoes the client secret and the
    /// refresh token and forges a log line is stored and shown masked, on one line.
    @Test func whatTheTokenEndpointEchoesIsMaskedAndKeptOnOneLine() async throws {
        try await Self.withProvider(items: 3) { client, provider, _ in
            let refresh = provider.grantRefreshToken()
            _ = try await client.call(.post, "/v1/credentials", Self.refreshCredential(provider, refreshToken: refresh))
            let source = try await Self.source(client, provider, name: "s", credential: "crm")
            provider.answerNext(status: 400, body: #"{"error": "invalid_grant", "error_description": "refresh \#(refresh) revoked; secret \#(provider.clientSecret)\n2026-12-06 critical tributary: FORGED"}"#)
            let failed = try await client.runSync(source)
            #expect(failed["status"] == .string("failed"))
            let shown = String(buffer: try await client.call(.get, "/v1/credentials/crm").body) + String(describing: failed)
            #expect(!shown.contains(refresh) && !shown.contains(provider.clientSecret), "\(shown)")
            let reason = try await client.call(.get, "/v1/credentials/crm").json["status_reason"]?.stringValue ?? ""
            #expect(reason.contains("invalid_grant") && reason.contains("***") && !reason.contains("\n"), "\(reason)")
        }
    }

    /// `invalid_grant` said by a 500 or a 429 is the endpoint's trouble, not the grant's: the
    /// credential stays active and the sync is retried; a 429's Retry-After is waited for.
    @Test func aBusyOrBrokenTokenEndpointIsRetriedAndHonoursRetryAfter() async throws {
        try await Self.withProvider(items: 3) { client, provider, _ in
            _ = try await client.call(.post, "/v1/credentials", Self.refreshCredential(provider, refreshToken: provider.grantRefreshToken()))
            let source = try await Self.source(client, provider, name: "s", credential: "crm")
            provider.answerNext(status: 500, body: #"{"error": "invalid_grant"}"#)
            provider.answerNext(status: 429, body: #"{"error": "invalid_grant"}"#, headers: [("Retry-After", "2")])
            let done = try await client.runSync(source)
            #expect(done["status"] == .string("completed"), "\(done)")
            #expect(try await client.call(.get, "/v1/credentials/crm").json["status"] == .string("active"))
            let times = provider.tokenRequestTimes
            #expect(times.count == 3, "500, 429, then the refresh that worked")
            if times.count == 3 { #expect(times[2] - times[1] >= .milliseconds(1900), "Retry-After: 2 waited for") }
        }
    }
}
