import Foundation
import Testing
import SyncCore
@testable import SyncServer
@testable import SyncStore

/// One serializer: a webhook body and the dashboard's JSON go through ``JSONWriter`` like
/// every API body, so the same sync reads the same everywhere.
@Suite("One serializer")
struct SerializerTests {
    /// A sync whose figures need all 17 significant digits of a double.
    func sync() -> Sync {
        let t = Date(timeIntervalSince1970: 1_796_000_000.123)
        var progress = SyncProgress()
        progress.recordsRead = 7
        return Sync(id: "syn_1", sourceID: "src_1", status: .completed, mode: .full, priority: 0, trigger: .api, attempt: 1,
                    maxAttempts: 3, queuedAt: t, startedAt: t, finishedAt: t, progress: progress,
                    checkpoint: .object(["offset": .number(0.1 + 0.2), "path": .string("a/b")]), runSeconds: 0.1 + 0.2)
    }

    @Test func aWebhookBodyShowsTheSyncByteForByteAsTheAPIDoes() throws {
        let sync = sync()
        let delivery = WebhookDelivery(seq: 1, syncID: sync.id, sourceID: sync.sourceID, sourceName: "crm/eu", event: "sync.completed",
                                       url: "http://127.0.0.1:1/", receiver: "http://127.0.0.1:1", secret: nil, sync: sync, status: .pending, tries: 0,
                                       createdAt: Date(timeIntervalSince1970: 1_796_000_000))
        let body = String(decoding: WebhookPayload.render(delivery), as: UTF8.self)
        let api = String(decoding: JSONWriter.bytes(APIRepresentation.sync(sync)), as: UTF8.self)
        #expect(body.contains("\"sync\":" + api), "\(body)\n\(api)")
        #expect(api.contains("0.30000000000000004"))
        #expect(body.contains("\"name\":\"crm/eu\""), "slashes unescaped, as the API writes them")
    }

    @Test func theDashboardsPrettyJSONIsTheWritersLaidOut() throws {
        let value: JSONValue = .object(["b": .array([.number(1), .number(0.1 + 0.2)]), "a": .object([:]), "c": .array([]), "d": .string("x/y")])
        let pretty = JSONWriter.prettyBytes(value)
        #expect(String(decoding: pretty, as: UTF8.self) == """
            {
              "a": {},
              "b": [
                1,
                0.30000000000000004
              ],
              "c": [],
              "d": "x/y"
            }
            """)
        // Laid out, not changed: read back, it is the compact form's value.
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(pretty)) == value)
    }
}
