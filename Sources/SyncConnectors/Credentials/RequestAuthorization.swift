import Foundation
import SyncCore

/// What a credential adds to a request to its source's own origin: headers, and for an
/// `api_key` in the query, a query parameter. Never sent to another origin (a redirect, a
/// next link elsewhere) and never to a token endpoint.
public struct RequestAuthorization: Sendable, Equatable {
    public struct Pair: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public var headers: [Pair]
    public var query: [Pair]
    public init(headers: [Pair] = [], query: [Pair] = []) {
        self.headers = headers
        self.query = query
    }

    /// The secret values it carries: each header's value after its scheme (`Bearer `,
    /// `Basic `) and as a whole, and each query value.
    public var secretValues: [String] {
        headers.flatMap { pair in [pair.value, String(pair.value.drop { $0 != " " }.dropFirst())] } + query.map(\.value)
    }

    /// `url` with the credential's query parameters set (replacing any of the same name).
    func apply(to url: URL) -> URL {
        QueryString.appending(query.map { ($0.name, $0.value) }, to: url)
    }
}

/// Supplies the authorization of a source's credential, one request at a time.
public protocol CredentialSupplier: Sendable {
    /// The authorization for the next request (an OAuth2 token is refreshed first when it
    /// is near its expiry).
    func authorization() async throws -> RequestAuthorization
    /// The upstream answered `401` to `rejected`: a new authorization to try once, or `nil`
    /// when there is nothing else to try (a static secret).
    func reauthorize(after rejected: RequestAuthorization) async throws -> RequestAuthorization?
}

/// A credential whose authorization is its stored secret: `bearer`, `basic`, `api_key`.
public struct StaticCredential: CredentialSupplier {
    let authorizationValue: RequestAuthorization

    public init(_ credential: Credential) throws {
        authorizationValue = try Self.authorization(of: credential)
    }

    public func authorization() async throws -> RequestAuthorization { authorizationValue }
    public func reauthorize(after rejected: RequestAuthorization) async throws -> RequestAuthorization? { nil }

    /// The headers and query parameters of a credential's stored secret (an OAuth2
    /// credential's: its cached access token as a bearer token).
    public static func authorization(of credential: Credential) throws -> RequestAuthorization {
        func secret(_ name: String) throws -> String {
            guard let value = credential.secrets[name] else {
                throw SyncError(.upstreamAuthFailed, "credential \(credential.name) has no \(name)", retryable: false)
            }
            return value
        }
        switch credential.type {
        case .bearer:
            return RequestAuthorization(headers: [.init("Authorization", "Bearer " + (try secret("token")))])
        case .basic:
            let pair = (credential.text("username") ?? "") + ":" + (try secret("password"))
            return RequestAuthorization(headers: [.init("Authorization", "Basic " + Data(pair.utf8).base64EncodedString())])
        case .apiKey:
            let name = credential.text("name") ?? "X-Api-Key"
            let value = try secret("value")
            return credential.text("in") == "query"
                ? RequestAuthorization(query: [.init(name, value)])
                : RequestAuthorization(headers: [.init(name, value)])
        case .oauth2ClientCredentials, .oauth2RefreshToken:
            guard let token = credential.accessToken else {
                throw SyncError(.upstreamAuthFailed, "credential \(credential.name) has no access token", retryable: true)
            }
            return RequestAuthorization(headers: [.init("Authorization", "Bearer " + token)])
        }
    }
}
