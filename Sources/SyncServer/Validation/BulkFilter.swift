import Foundation
import Hummingbird
import SyncCore
import SyncStore

/// The body of `POST /v1/syncs/cancel` and `POST /v1/syncs/retry`: which syncs, as the
/// filters of `GET /v1/syncs` (`source_id`, `status`, `since`, `until`), all optional.
enum BulkFilter {
    /// The most syncs one call acts on.
    static let maxSyncs = 10_000

    /// The filter; `statuses` default to those the action can apply to.
    static func parse(_ bytes: [UInt8], defaultStatuses: [SyncStatus]) throws(Problem) -> (filter: SyncFilter, source: String?) {
        let body = try RequestBody.object(bytes, allowEmpty: true)
        var errors: [FieldError] = []
        var filter = SyncFilter(statuses: defaultStatuses)
        for key in body.keys where !["source_id", "status", "since", "until"].contains(key) { errors.append(FieldError(key, "unknown field")) }
        var source: String?
        if let value = body["source_id"] {
            if let s = value.stringValue, !s.isEmpty, s.utf8.count <= 200 { source = s } else { errors.append(FieldError("source_id", "must be a source id or name")) }
        }
        if let value = body["status"] {
            let names = value.arrayValue?.compactMap(\.stringValue) ?? []
            let statuses = names.compactMap(SyncStatus.init(rawValue:))
            if value.arrayValue == nil || names.count != value.arrayValue?.count || statuses.count != names.count || statuses.isEmpty {
                errors.append(FieldError("status", "must be a non-empty array of: \(SyncStatus.allCases.map(\.rawValue).joined(separator: ", "))"))
            } else {
                filter.statuses = statuses
            }
        }
        for (name, keyPath) in [("since", \SyncFilter.since), ("until", \SyncFilter.until)] {
            if let value = body[name] {
                if let d = value.stringValue.flatMap(Timestamp.parse) { filter[keyPath: keyPath] = d.addingTimeInterval(-0.0005) }
                else { errors.append(FieldError(name, "must be an RFC 3339 timestamp")) }
            }
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        return (filter, source)
    }
}
