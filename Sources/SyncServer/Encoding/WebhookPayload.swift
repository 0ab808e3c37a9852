import Foundation
import SyncCore
import SyncStore

/// The body of a webhook delivery (docs/webhooks.md):
/// `{"id", "event", "source": {"id", "name"}, "sync": <the sync as GET /v1/syncs/{id} shows it>}`,
/// the sync as it stood when its status changed.
public enum WebhookPayload {
    public static func render(_ delivery: WebhookDelivery) -> [UInt8] {
        let body: JSONValue = .object([
            "id": .string(delivery.id),
            "event": .string(delivery.event),
            "created_at": APIRepresentation.date(delivery.createdAt),
            "source": .object(["id": .string(delivery.sourceID), "name": delivery.sourceName.map(JSONValue.string) ?? .null]),
            "sync": delivery.sync.map(APIRepresentation.sync) ?? .null,
        ])
        return JSONWriter.bytes(body)
    }
}
