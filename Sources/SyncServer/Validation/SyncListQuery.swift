import Foundation
import Hummingbird
import SyncCore
import SyncStore

/// The filters of `GET /v1/syncs`: `source_id`, `status` (repeatable, comma-separated),
/// `since` and `until` (RFC 3339).
enum SyncListQuery {
    static func filter(_ request: Request) throws(Problem) -> SyncFilter {
        var filter = SyncFilter()
        var errors: [FieldError] = []
        let query = request.uri.queryParameters
        filter.sourceID = query["source_id"].map(String.init)
        filter.statuses = statuses(request, errors: &errors)
        for (name, keyPath) in [("since", \SyncFilter.since), ("until", \SyncFilter.until)] {
            if let raw = query[Substring(name)] {
                // Compared at the API's precision: times are stored finer than the milliseconds
                // they are shown with, so a sync's own `queued_at` (rounded to the nearest
                // millisecond) passed back as `since` must include it, and as `until` exclude it.
                if let d = Timestamp.parse(String(raw)) { filter[keyPath: keyPath] = d.addingTimeInterval(-0.0005) }
                else { errors.append(FieldError(name, "must be an RFC 3339 timestamp")) }
            }
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        return filter
    }

    /// The `status` parameters (repeatable, comma-separated); an unknown one is an error.
    static func statuses(_ request: Request, errors: inout [FieldError]) -> [SyncStatus] {
        var statuses: [SyncStatus] = []
        for raw in request.uri.queryParameters.getAll("status") {
            for part in raw.split(separator: ",") {
                if let s = SyncStatus(rawValue: String(part)) { statuses.append(s) }
                else { errors.append(FieldError("status", "unknown status \(part); one of \(SyncStatus.allCases.map(\.rawValue).joined(separator: ", "))")) }
            }
        }
        return statuses
    }
}
