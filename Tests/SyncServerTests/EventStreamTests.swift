import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// `GET /v1/syncs/{id}/events` in process: order, monotonic progress, the end, resumption.
@Suite("Server-sent events of a sync")
struct EventStreamTests {
    @Test(arguments: StoreBackend.allCases)
    func aSyncStreamShowsProgressAndEndsWithTheTerminalStatus(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 1).test { client in
            let created = try await client.call(.post, "/v1/sources", #"{"name": "s", "kind": "synthetic", "config": {"records": 60, "page_size": 10, "delay_ms_per_page": 150}}"#)
            #expect(created.status == .created)
            let id = try #require(try await client.call(.post, "/v1/sources/s/syncs").json["id"]?.stringValue)
            let response = try await client.call(.get, "/v1/syncs/\(id)/events")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/event-stream; charset=utf-8")
            let events = ServerSentEvent.parse(String(buffer: response.body))
            #expect(events.count >= 4, "\(events)")
            #expect(events.first?.event == "progress")
            #expect(events.dropFirst().first?.event == "status")
            let pages = events.filter { $0.event == "progress" }.compactMap { $0.data["pages"]?.intValue }
            #expect(pages == pages.sorted(), "progress went back: \(pages)")
            #expect(pages.contains { $0 > 0 && $0 < 6 }, "no progress event while it ran: \(pages)")
            #expect(pages.last == 6)
            let last = try #require(events.last)
            #expect(last.event == "status")
            #expect(last.data["status"] == .string("completed"))
            #expect(last.data["attempts"]?.arrayValue?.count == 1)
            #expect(last.id == "1.6.completed")
            let statuses = events.filter { $0.event == "status" }.compactMap { $0.data["status"]?.stringValue }
            #expect(statuses.filter { $0 == "completed" }.count == 1)

            // Resuming: the id of the state the client saw last is not sent again; any other is.
            let resumed = try await client.call(.get, "/v1/syncs/\(id)/events", headers: [.lastEventID: "1.6.completed"])
            #expect(ServerSentEvent.parse(String(buffer: resumed.body)).isEmpty)
            let behind = ServerSentEvent.parse(String(buffer: try await client.call(.get, "/v1/syncs/\(id)/events", headers: [.lastEventID: "1.2.running"]).body))
            #expect(behind.map(\.event) == ["progress", "status"])
            #expect(behind.last?.data["status"] == .string("completed"))

            #expect(try await client.call(.get, "/v1/syncs/syn_01JD0000000000000000000000/events").status == .notFound)
        }
    }
}

extension HTTPField.Name {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}
