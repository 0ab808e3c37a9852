import Foundation
import Logging
import Synchronization
import SyncConnectors
import SyncCore
import SyncStore

/// Hands out the authorization of sources' credentials on this node, and refreshes OAuth2
/// access tokens with one refresh per credential at a time on the whole cluster
/// (docs/credentials.md, "Refreshing").
///
/// - A token is refreshed before it expires (within a margin: 10 % of its life, at most
///   60 s), after the upstream answered `401` to it, and at least once a day for a
///   credential with a refresh token (providers revoke idle ones).
/// - On this node, concurrent callers share one refresh task; across nodes, the database
///   lease (``CredentialVault/claimRefresh(credentialID:seenVersion:owner:leaseSeconds:now:)``)
///   lets one node refresh while the others wait for its result.
/// - The token endpoint's answer (a new access token and a rotated refresh token) is
///   committed before either is used; a refresh runs to its commit even when the sync that
///   asked for it is cancelled.
final class CredentialBroker: Sendable {
    let store: any CredentialVault
    let endpoint: OAuth2TokenEndpoint?
    /// This node's name as a lease holder (unique per process).
    let owner: String
    let logger: Logger
    private let inflight = Mutex<[String: Task<Credential, any Error>]>([:])

    /// How long to wait for another node's refresh before giving up (retryable).
    var patience: Double { (endpoint?.timeoutSeconds ?? 20) + 15 }
    /// The refresh lease: short, and extended every second while the token endpoint is
    /// asked, so a node that dies mid-refresh holds the others up for at most this long.
    let leaseSeconds: Double = 5
    static let dailyRefresh: Double = 86_400

    init(store: any CredentialVault, endpoint: OAuth2TokenEndpoint?, nodeID: String, logger: Logger) {
        self.store = store
        self.endpoint = endpoint
        self.owner = nodeID + "/" + UUID().uuidString.prefix(8)
        self.logger = logger
    }

    /// The supplier a source's requests use.
    func supplier(for credentialID: String) -> any CredentialSupplier { BrokeredCredential(broker: self, id: credentialID) }

    /// The credential as it can be used now: an OAuth2 one with an access token that is not
    /// near its expiry and is not `rejected`.
    func usable(_ id: String, rejected: String? = nil) async throws -> Credential {
        let credential = try await load(id)
        guard credential.type.isOAuth2, Self.needsRefresh(credential, rejected: rejected, now: Date()) else { return credential }
        return try await refresh(credential)
    }

    func load(_ id: String) async throws -> Credential {
        guard let credential = try await store.credential(idOrName: id), credential.id == id else {
            throw SyncError(.upstreamAuthFailed, "the source's credential \(id) no longer exists", retryable: false)
        }
        try Self.checkActive(credential)
        return credential
    }

    static func checkActive(_ credential: Credential) throws {
        guard credential.status == .active else {
            throw SyncError(.upstreamAuthFailed, "credential \(credential.name) needs re-authorisation"
                                + (credential.statusReason.map { ": " + $0 } ?? ""), retryable: false)
        }
    }

    /// Whether `credential`'s access token must be refreshed before use.
    static func needsRefresh(_ credential: Credential, rejected: String?, now: Date) -> Bool {
        guard let token = credential.accessToken else { return true }
        if let rejected, rejected == token { return true }
        if let expires = credential.tokenExpiresAt {
            let life = credential.lastRefreshAt.map { expires.timeIntervalSince($0) } ?? 3600
            if expires.timeIntervalSince(now) <= min(60, max(life, 0) * 0.1) { return true }
        }
        if credential.type == .oauth2RefreshToken, let last = credential.lastRefreshAt, now.timeIntervalSince(last) >= dailyRefresh { return true }
        return false
    }

    /// One refresh task per credential on this node; callers that arrive while it runs share it.
    private func refresh(_ seen: Credential) async throws -> Credential {
        let task = inflight.withLock { tasks -> Task<Credential, any Error> in
            if let running = tasks[seen.id] { return running }
            let task = Task { [self] in
                defer { _ = inflight.withLock { $0.removeValue(forKey: seen.id) } }
                return try await refreshOnCluster(seen)
            }
            tasks[seen.id] = task
            return task
        }
        return try await task.value
    }

    /// Takes the cluster's refresh lease and refreshes, or waits for the node that holds it.
    private func refreshOnCluster(_ first: Credential) async throws -> Credential {
        guard let endpoint else {
            throw SyncError(.upstreamAuthFailed, "this node has no HTTP client for token endpoints", retryable: false)
        }
        let deadline = Date().addingTimeInterval(patience)
        var seen = first
        while Date() < deadline {
            switch try await store.claimRefresh(credentialID: seen.id, seenVersion: seen.version, owner: owner,
                                                leaseSeconds: leaseSeconds, now: Date()) {
            case .missing:
                throw SyncError(.upstreamAuthFailed, "the source's credential \(seen.id) no longer exists", retryable: false)
            case .current(let current):
                // Another node refreshed (or the credential needs new secrets) since `seen` was read.
                try Self.checkActive(current)
                if !Self.needsRefresh(current, rejected: nil, now: Date()) { return current }
                seen = current
            case .busy:
                try await Task.sleep(for: .milliseconds(100))
                let current = try await load(seen.id)
                if current.version != seen.version {
                    if !Self.needsRefresh(current, rejected: nil, now: Date()) { return current }
                    seen = current
                }
            case .claimed(let current):
                let token: IssuedToken
                do {
                    token = try await whileLeased(current.id) { try await endpoint.requestToken(for: current) }
                } catch let refused as OAuth2TokenEndpoint.Refused {
                    try await store.abandonRefresh(credentialID: current.id, owner: owner, needsReauth: refused.reason, now: Date())
                    logger.warning("credential needs re-authorisation", metadata: ["credential": .string(current.name), "reason": .string(refused.reason)])
                    throw SyncError(.upstreamAuthFailed, "credential \(current.name) needs re-authorisation: \(refused.reason)", retryable: false)
                } catch {
                    try? await store.abandonRefresh(credentialID: current.id, owner: owner, needsReauth: nil, now: Date())
                    throw error
                }
                if let stored = try await store.completeRefresh(credentialID: current.id, owner: owner, token: token, now: Date()) {
                    logger.info("credential refreshed", metadata: ["credential": .string(current.name), "rotated": .stringConvertible(token.refreshToken != nil)])
                    return stored
                }
                // The lease was taken from us (new secrets were given meanwhile): what is stored stands.
                seen = try await load(current.id)
                if !Self.needsRefresh(seen, rejected: nil, now: Date()) { return seen }
            }
        }
        throw SyncError(.upstreamUnavailable, "the refresh of credential \(first.name) did not finish within \(Int(patience)) s", retryable: true)
    }
}

extension CredentialBroker {
    /// Runs `work` while extending this node's refresh lease on `id` every second.
    func whileLeased<T: Sendable>(_ id: String, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask { [store, owner, leaseSeconds] in
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(1))
                    guard try await store.extendRefresh(credentialID: id, owner: owner, until: Date().addingTimeInterval(leaseSeconds)) else { return nil }
                }
                return nil
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let value = next { return value }
            }
            throw CancellationError()
        }
    }
}

/// A source's credential as its requests see it.
struct BrokeredCredential: CredentialSupplier {
    let broker: CredentialBroker
    let id: String

    func authorization() async throws -> RequestAuthorization {
        try StaticCredential.authorization(of: try await broker.usable(id))
    }

    func reauthorize(after rejected: RequestAuthorization) async throws -> RequestAuthorization? {
        let current = try await broker.load(id)
        guard current.type.isOAuth2 else { return nil }
        let sent = rejected.headers.first { $0.name == "Authorization" }.map { String($0.value.dropFirst("Bearer ".count)) }
        return try StaticCredential.authorization(of: try await broker.usable(id, rejected: sent))
    }
}
