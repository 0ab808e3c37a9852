import Foundation
import SyncCore

/// A sync claimed by a worker, with its source and its lease.
public struct ClaimedSync: Sendable {
    public var sync: Sync
    public var source: Source
    public var lease: Lease
    public init(sync: Sync, source: Source, lease: Lease) {
        self.sync = sync
        self.source = source
        self.lease = lease
    }
}
