import Foundation
import SyncCore

/// Credentials and their cached OAuth2 tokens (docs/credentials.md).
///
/// A refresh is leased: ``claimRefresh(credentialID:seenVersion:owner:leaseSeconds:now:)``
/// gives the lease to one caller on the whole cluster at a time, and only the lease's
/// holder can store what the token endpoint answered. The new access token and a rotated
/// refresh token are committed together, before either is used.
public protocol CredentialVault: Sendable {
    /// Throws ``SyncStoreError/credentialNameTaken(_:)``.
    func createCredential(_ credential: Credential) async throws -> Credential
    /// The credential with this id, else the one with this name.
    func credential(idOrName: String) async throws -> Credential?
    /// Credentials in id order after `after`.
    func credentials(limit: Int, after: String?) async throws -> [Credential]
    /// Writes name, fields and secrets. With `secretsChanged`, the credential is active
    /// again, its cached token is dropped and a refresh in flight loses its lease.
    func updateCredential(_ credential: Credential, secretsChanged: Bool, now: Date) async throws -> Credential
    /// Throws ``SyncStoreError/credentialInUse(sourceID:sources:)`` while a source uses it.
    func deleteCredential(id: String) async throws
    /// How many sources use each credential.
    func credentialUsage(ids: [String]) async throws -> [String: Int]
    /// The sources (id and name, by name) that use each credential, at most `limit` each,
    /// and how many there are in all.
    func credentialSources(ids: [String], limit: Int) async throws -> [String: (first: [(id: String, name: String)], total: Int)]
    /// Asks for the refresh lease of a credential read at `seenVersion`.
    func claimRefresh(credentialID: String, seenVersion: Int, owner: String, leaseSeconds: Double, now: Date) async throws -> RefreshClaim
    /// Moves the end of `owner`'s refresh lease to `until`; `false` when it no longer holds it.
    func extendRefresh(credentialID: String, owner: String, until: Date) async throws -> Bool
    /// Stores a refresh's result if `owner` still holds the lease (else `nil`: the result is
    /// dropped), and ends the lease.
    func completeRefresh(credentialID: String, owner: String, token: IssuedToken, now: Date) async throws -> Credential?
    /// Ends `owner`'s lease without a new token; with `needsReauth`, the credential needs new
    /// secrets (the reason is shown).
    func abandonRefresh(credentialID: String, owner: String, needsReauth: String?, now: Date) async throws
}

/// The answer to a refresh claim.
public enum RefreshClaim: Sendable, Equatable {
    /// The caller holds the lease; refresh with this (current) credential.
    case claimed(Credential)
    /// Another refresh got there first (the version moved), or the credential needs
    /// re-authorisation: use this.
    case current(Credential)
    /// Another caller holds the lease until the date: wait for its result.
    case busy(until: Date)
    case missing
}
