import Foundation

/// How a source proves who it is to its upstream (docs/credentials.md). Shared by any
/// number of sources; its secrets are write-only on every surface.
public struct Credential: Sendable, Equatable {
    public var id: String
    public var name: String
    public var type: CredentialType
    /// The non-secret fields of the type (`username`, `in`, `name`, `token_url`, `client_id`,
    /// `scopes`, `audience`, `extra_params`, `client_auth`).
    public var fields: JSONObject
    /// The secret fields of the type (`token`, `password`, `value`, `client_secret`,
    /// `refresh_token`), by name; never shown.
    public var secrets: [String: String]
    public var status: CredentialStatus
    /// Why the credential needs re-authorisation (the token endpoint's answer, secrets masked).
    public var statusReason: String?
    /// The OAuth2 access token every node uses until it nears its expiry; never shown.
    public var accessToken: String?
    public var tokenExpiresAt: Date?
    public var lastRefreshAt: Date?
    public var refreshCount: Int
    /// Grows with every change of a secret or of the cached token: a node that read version
    /// n and finds n+1 knows another node refreshed meanwhile.
    public var version: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, name: String, type: CredentialType, fields: JSONObject = [:], secrets: [String: String] = [:],
                status: CredentialStatus = .active, statusReason: String? = nil, accessToken: String? = nil,
                tokenExpiresAt: Date? = nil, lastRefreshAt: Date? = nil, refreshCount: Int = 0, version: Int = 0,
                createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.type = type
        self.fields = fields
        self.secrets = secrets
        self.status = status
        self.statusReason = statusReason
        self.accessToken = accessToken
        self.tokenExpiresAt = tokenExpiresAt
        self.lastRefreshAt = lastRefreshAt
        self.refreshCount = refreshCount
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// A non-secret field as text.
    public func text(_ field: String) -> String? { fields[field]?.stringValue }
}

public enum CredentialType: String, Sendable, CaseIterable, Codable {
    case bearer
    case basic
    case apiKey = "api_key"
    case oauth2ClientCredentials = "oauth2_client_credentials"
    case oauth2RefreshToken = "oauth2_refresh_token"

    /// The fields of the type that are secrets (write-only).
    public var secretFields: [String] {
        switch self {
        case .bearer: ["token"]
        case .basic: ["password"]
        case .apiKey: ["value"]
        case .oauth2ClientCredentials: ["client_secret"]
        case .oauth2RefreshToken: ["client_secret", "refresh_token"]
        }
    }

    /// The secret fields a credential of the type cannot do without.
    public var requiredSecrets: [String] {
        switch self {
        case .bearer: ["token"]
        case .basic: ["password"]
        case .apiKey: ["value"]
        case .oauth2ClientCredentials: ["client_secret"]
        case .oauth2RefreshToken: ["refresh_token"]
        }
    }

    /// The non-secret fields of the type.
    public var plainFields: [String] {
        switch self {
        case .bearer: []
        case .basic: ["username"]
        case .apiKey: ["in", "name"]
        case .oauth2ClientCredentials, .oauth2RefreshToken: ["token_url", "client_id", "scopes", "audience", "extra_params", "client_auth"]
        }
    }

    public var isOAuth2: Bool { self == .oauth2ClientCredentials || self == .oauth2RefreshToken }
}

/// `active`, or `needs_reauth` once the token endpoint refused the credential itself
/// (`invalid_grant`, `invalid_client`): its syncs fail at once until new secrets are given.
public enum CredentialStatus: String, Sendable, CaseIterable, Codable {
    case active
    case needsReauth = "needs_reauth"
}

/// A credential's name rule: a source's, and never shaped like a credential id (`cred_` and
/// 26 letters or digits), so a name cannot shadow another credential's id in a path.
public enum CredentialName {
    public static func isValid(_ name: String) -> Bool {
        guard SourceName.isValid(name) else { return false }
        let bytes = Array(name.utf8)
        return !(bytes.count == 31 && name.lowercased().hasPrefix("cred_")
            && bytes[5...].allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) })
    }
}

/// What a token endpoint issued.
public struct IssuedToken: Sendable, Equatable {
    public var accessToken: String
    public var expiresAt: Date?
    /// A rotated refresh token, stored in place of the one used.
    public var refreshToken: String?
    public init(accessToken: String, expiresAt: Date?, refreshToken: String?) {
        self.accessToken = accessToken
        self.expiresAt = expiresAt
        self.refreshToken = refreshToken
    }
}
