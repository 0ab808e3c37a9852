import Foundation
import SyncCore
import SyncStore

/// The body of a webhook delivery (docs/webhooks.md):
/// `{"id", "event", "source": {"id", "name"}, "sync": <the sync as GET /v1/syncs/{id} shows it>}`,
/// the sync as it stood when its status changed; a `records.changed` body adds `changes`.
public enum WebhookPayload {
    public static func render(_ delivery: WebhookDelivery) -> [UInt8] {
        var body: JSONObject = [
            "id": .string(delivery.id),
            "event": .string(delivery.event),
            "created_at": APIRepresentation.date(delivery.createdAt),
            "source": .object(["id": .string(delivery.sourceID), "name": delivery.sourceName.map(JSONValue.string) ?? .null]),
            "sync": delivery.sync.map(APIRepresentation.sync) ?? .null,
        ]
        if delivery.event == WebhookEvent.recordsChanged.rawValue { body["changes"] = changes(delivery.sync) }
        return JSONWriter.bytes(.object(body))
    }

    /// A `records.changed` body's counts and stretch of the feed: what the sync created,
    /// updated and marked deleted, and the cursors that read exactly those changes.
    static func changes(_ sync: Sync?) -> JSONValue {
        guard let sync, case .object(var range) = APIRepresentation.changes(sync) else { return .null }
        range["created"] = APIRepresentation.int(sync.progress.recordsCreated)
        range["updated"] = APIRepresentation.int(sync.progress.recordsUpdated)
        range["deleted"] = APIRepresentation.int(sync.progress.recordsDeleted)
        return .object(range)
    }
}
