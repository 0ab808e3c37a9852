import SyncCore

/// Builders of the connector errors, so every place words and classifies them alike.
enum SyncErrorFactory {
    static func unavailable(_ message: String, status: Int? = nil, retryAfter: Double? = nil) -> SyncError {
        SyncError(.upstreamUnavailable, message, retryable: true, httpStatus: status, retryAfterSeconds: retryAfter)
    }
    static func egressBlocked(_ message: String) -> SyncError { SyncError(.egressBlocked, message, retryable: false) }
    static func invalidResponse(_ message: String, status: Int? = nil) -> SyncError {
        SyncError(.invalidResponse, message, retryable: false, httpStatus: status)
    }
}
