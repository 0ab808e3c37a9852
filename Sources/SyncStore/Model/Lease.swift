import Foundation
import SyncCore

/// The fencing token of a claimed sync: every write a worker makes is conditional on it.
public struct Lease: Sendable, Hashable {
    public var syncID: String
    public var owner: String
    public var token: String
    public var attempt: Int
    public init(syncID: String, owner: String, token: String, attempt: Int) {
        self.syncID = syncID
        self.owner = owner
        self.token = token
        self.attempt = attempt
    }
}
