import Foundation
import SyncCore

/// One notification in the outbox (docs/webhooks.md): an event of a sync for one of its
/// source's webhooks, written by the database in the transaction that changed the sync's
/// status, then POSTed by a node's delivery service until it is delivered or given up.
public struct WebhookDelivery: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable {
        /// Waiting for its next try (or being tried now, under a lease).
        case pending
        /// A try got a 2xx.
        case delivered
        /// Given up: every try failed within the retry window.
        case failed
    }

    public var seq: Int64
    public var syncID: String
    public var sourceID: String
    /// `nil` in listings; filled in for the delivery service.
    public var sourceName: String?
    /// `sync.completed`, `sync.failed`, `sync.cancelled` or `sync.retrying`.
    public var event: String
    public var url: String
    /// The URL's origin, which deliveries share their slots by (``WebhookTarget/receiver``).
    public var receiver: String
    /// Write-only: never rendered, never logged.
    public var secret: String?
    /// The sync as it stood when its status changed, with its attempts up to then; `nil` in listings.
    public var sync: Sync?
    public var status: Status
    /// Tries made so far (the one being made included, once claimed).
    public var tries: Int
    public var createdAt: Date
    public var nextAttemptAt: Date?
    public var lastAttemptAt: Date?
    public var responseStatus: Int?
    public var lastError: String?
    public var deliveredAt: Date?
    /// The exact bytes POSTed, fixed by the first try so every retry sends the same body.
    public var body: [UInt8]?

    /// `dlv_` and the outbox sequence, zero-padded so ids sort as they were written.
    public var id: String { Self.id(seq) }

    public static func id(_ seq: Int64) -> String {
        let digits = String(seq)
        return "dlv_" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }
}

/// What one try of a delivery came to.
public enum WebhookTryResult: Sendable, Equatable {
    case delivered(responseStatus: Int)
    case retry(at: Date, responseStatus: Int?, error: String)
    case failed(responseStatus: Int?, error: String)
}
