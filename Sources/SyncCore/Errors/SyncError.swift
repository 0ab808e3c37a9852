/// The typed error of a sync attempt: what failed, in words a client can act on.
///
/// `code` is stable and machine-readable (docs/api.md lists them); `retryable`
/// decides whether the source's ``RetryPolicy`` applies or the sync fails at
/// once. Messages never contain secrets.
public struct SyncError: Error, Sendable, Codable, Equatable, CustomStringConvertible {
    public var code: Code
    public var message: String
    public var retryable: Bool
    public var httpStatus: Int?
    /// Seconds the upstream asked us to wait (`Retry-After`), if any.
    public var retryAfterSeconds: Double?

    public init(_ code: Code, _ message: String, retryable: Bool? = nil, httpStatus: Int? = nil, retryAfterSeconds: Double? = nil) {
        self.code = code
        self.message = message
        self.retryable = retryable ?? code.isRetryableByDefault
        self.httpStatus = httpStatus
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case code, message, retryable
        case httpStatus = "http_status"
        case retryAfterSeconds = "retry_after_seconds"
    }

    /// The stable error codes of a sync (docs/api.md, "error").
    public enum Code: String, Sendable, Codable, CaseIterable {
        case upstreamUnavailable = "upstream_unavailable"
        case upstreamRateLimited = "upstream_rate_limited"
        case upstreamTimeout = "upstream_timeout"
        case upstreamClientError = "upstream_client_error"
        case upstreamAuthFailed = "upstream_auth_failed"
        case invalidResponse = "invalid_response"
        case configInvalid = "config_invalid"
        case egressBlocked = "egress_blocked"
        case attemptsExhausted = "attempts_exhausted"
        case sourceKindUnknown = "source_kind_unknown"
        case internalError = "internal"
        /// An attempt that handed its sync back to the queue at its checkpoint (graceful
        /// shutdown, the database unavailable, a lost commit): not a failure, not a bug.
        case handedBack = "handed_back"

        public var isRetryableByDefault: Bool {
            switch self {
            case .upstreamUnavailable, .upstreamRateLimited, .upstreamTimeout, .internalError, .handedBack: true
            case .upstreamClientError, .upstreamAuthFailed, .invalidResponse, .configInvalid,
                 .egressBlocked, .attemptsExhausted, .sourceKindUnknown: false
            }
        }
    }
}
