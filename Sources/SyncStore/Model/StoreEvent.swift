import Foundation
import SyncCore

/// What one node tells the others through the database.
public enum StoreEvent: Sendable, Equatable {
    /// A sync became runnable: an idle worker should try to claim.
    case wake
    /// A client cancelled this running sync: the node running it should stop it.
    case cancelRequested(syncID: String)
    /// A commit changed this source's records: the change feed's waiting readers should look.
    case recordsChanged(sourceID: String)

    public init?(payload: String) {
        if payload == "wake" { self = .wake; return }
        if payload.hasPrefix("cancel:") { self = .cancelRequested(syncID: String(payload.dropFirst("cancel:".count))); return }
        if payload.hasPrefix("changes:") { self = .recordsChanged(sourceID: String(payload.dropFirst("changes:".count))); return }
        return nil
    }

    /// The text sent through PostgreSQL's `NOTIFY`.
    public var payload: String {
        switch self {
        case .wake: "wake"
        case .cancelRequested(let id): "cancel:\(id)"
        case .recordsChanged(let id): "changes:\(id)"
        }
    }
}
