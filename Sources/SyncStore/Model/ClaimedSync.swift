import Foundation
import SyncCore

/// A sync claimed by a worker, with its source and its lease.
public struct ClaimedSync: Sendable {
    public var sync: Sync
    public var source: Source
    public var lease: Lease
    /// A secret of the source's own config did not open (damaged, or sealed with a key this
    /// node was not given): the attempt fails at once with `config_invalid`.
    public var secretsUnreadable = false
    public init(sync: Sync, source: Source, lease: Lease) {
        self.sync = sync
        self.source = source
        self.lease = lease
    }
}
