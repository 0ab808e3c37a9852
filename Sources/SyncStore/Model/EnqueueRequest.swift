import Foundation
import SyncCore

/// A request to queue a sync.
public struct EnqueueRequest: Sendable {
    public var sourceID: String
    public var mode: SyncMode
    public var priority: Int
    public var trigger: SyncTrigger
    public var idempotencyKey: String?
    /// A fingerprint of the request body, compared when an idempotency key repeats.
    public var requestFingerprint: String
    public var now: Date

    public init(sourceID: String, mode: SyncMode, priority: Int, trigger: SyncTrigger, idempotencyKey: String? = nil, requestFingerprint: String = "", now: Date = Date()) {
        self.sourceID = sourceID
        self.mode = mode
        self.priority = priority
        self.trigger = trigger
        self.idempotencyKey = idempotencyKey
        self.requestFingerprint = requestFingerprint
        self.now = now
    }
}

/// What an enqueue did: created a sync, or replayed the one an idempotency key names.
public enum EnqueueOutcome: Sendable {
    case created(Sync)
    case replayed(Sync)

    public var sync: Sync {
        switch self {
        case .created(let s), .replayed(let s): s
        }
    }
}
