import Foundation
import SyncCore

/// Filters of `GET /v1/syncs`.
public struct SyncFilter: Sendable {
    public var sourceID: String?
    public var statuses: [SyncStatus]
    public var since: Date?
    public var until: Date?
    public init(sourceID: String? = nil, statuses: [SyncStatus] = [], since: Date? = nil, until: Date? = nil) {
        self.sourceID = sourceID
        self.statuses = statuses
        self.since = since
        self.until = until
    }
}
