import Foundation
import Testing
import SyncCore
@testable import SyncEngine

/// When a node refreshes an OAuth2 token before using it (docs/credentials.md, "Refreshing").
@Suite("When a token is refreshed")
struct CredentialRefreshRuleTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func credential(_ type: CredentialType = .oauth2RefreshToken, token: String? = "at", refreshed: Double = -100, expiresIn: Double? = 3500) -> Credential {
        Credential(id: "cred_x", name: "x", type: type, accessToken: token,
                   tokenExpiresAt: expiresIn.map { now.addingTimeInterval($0) }, lastRefreshAt: now.addingTimeInterval(refreshed),
                   createdAt: now, updatedAt: now)
    }

    @Test func aFreshTokenIsUsedAsItIs() {
        #expect(!CredentialBroker.needsRefresh(credential(), rejected: nil, now: now))
        #expect(!CredentialBroker.needsRefresh(credential(expiresIn: nil), rejected: nil, now: now), "no expiry given: used until refused")
    }

    @Test func withinTheMarginItIsRefreshed() {
        // A one-hour token: the margin is 60 s (10 % would be 6 min).
        #expect(CredentialBroker.needsRefresh(credential(refreshed: -3545, expiresIn: 55), rejected: nil, now: now))
        #expect(!CredentialBroker.needsRefresh(credential(refreshed: -3535, expiresIn: 65), rejected: nil, now: now))
        // A two-second token: the margin is 10 % of its life, 0.2 s.
        #expect(CredentialBroker.needsRefresh(credential(refreshed: -1.85, expiresIn: 0.15), rejected: nil, now: now))
        #expect(!CredentialBroker.needsRefresh(credential(refreshed: -1.5, expiresIn: 0.5), rejected: nil, now: now))
        #expect(CredentialBroker.needsRefresh(credential(expiresIn: -1), rejected: nil, now: now), "expired")
    }

    @Test func aRejectedOrMissingTokenIsRefreshedAndOnlyThatOne() {
        #expect(CredentialBroker.needsRefresh(credential(), rejected: "at", now: now))
        #expect(!CredentialBroker.needsRefresh(credential(), rejected: "an older token", now: now))
        #expect(CredentialBroker.needsRefresh(credential(token: nil), rejected: nil, now: now))
    }

    @Test func aRefreshTokenIsUsedAtLeastOnceADay() {
        #expect(CredentialBroker.needsRefresh(credential(refreshed: -86_401, expiresIn: 30 * 86_400), rejected: nil, now: now))
        #expect(!CredentialBroker.needsRefresh(credential(.oauth2ClientCredentials, refreshed: -86_401, expiresIn: 30 * 86_400), rejected: nil, now: now),
                "client credentials have no refresh token to keep alive")
    }
}
