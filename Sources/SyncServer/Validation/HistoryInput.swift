import Foundation
import Hummingbird
import SyncCore
import SyncStore

/// The windows of `GET /v1/stats`.
enum StatsWindow: String, CaseIterable {
    case hour = "1h", day = "24h", week = "7d", month = "30d"

    var seconds: Double {
        switch self {
        case .hour: 3_600
        case .day: 86_400
        case .week: 604_800
        case .month: 2_592_000
        }
    }

    /// `window` from the query; 24h when absent.
    static func parse(_ request: Request) throws(Problem) -> StatsWindow {
        guard let raw = request.uri.queryParameters["window"] else { return .day }
        guard let window = StatsWindow(rawValue: String(raw)) else {
            throw Problem.validation([FieldError("window", "must be one of: \(allCases.map(\.rawValue).joined(separator: ", "))")])
        }
        return window
    }
}

/// The body of `POST /v1/maintenance/prune`: `older_than_seconds` and
/// `keep_last_per_source`, each defaulting to the server's retention.
enum PruneInput {
    /// Ten years: a longer age deletes nothing anyway, and every number here stays finite.
    static let maxAgeSeconds: Double = 315_360_000

    static func parse(_ bytes: [UInt8], defaults: RetentionPolicy) throws(Problem) -> RetentionPolicy {
        let body = try RequestBody.object(bytes, allowEmpty: true)
        var policy = defaults
        var errors: [FieldError] = []
        for key in body.keys where key != "older_than_seconds" && key != "keep_last_per_source" {
            errors.append(FieldError(key, "unknown field"))
        }
        if let value = body["older_than_seconds"] {
            if case .number(let n) = value, n.isFinite, n >= 0, n <= maxAgeSeconds { policy.olderThanSeconds = n }
            else { errors.append(FieldError("older_than_seconds", "must be a number of seconds between 0 and \(Int(maxAgeSeconds))")) }
        }
        if let value = body["keep_last_per_source"] {
            if let n = value.intValue, (0...1_000_000).contains(n) { policy.keepLastPerSource = n }
            else { errors.append(FieldError("keep_last_per_source", "must be an integer between 0 and 1000000")) }
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        return policy
    }
}
