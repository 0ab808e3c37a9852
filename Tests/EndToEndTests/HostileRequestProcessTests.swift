import Foundation
import Testing
import SyncCore
import TestSupport

/// Requests that once killed a node, sent to the real binary: the process must answer them
/// and go on answering (a trap in process would end the test runner, not fail a test).
@Suite("Hostile requests against the real binary")
struct HostileRequestProcessTests {
    /// Opens `GET /v1/events` with `Last-Event-ID: value` and reads what it sends within a second.
    func events(port: Int, lastEventID: String) async throws -> (head: String, events: [ServerSentEvent]) {
        let connection = try RawConnection(port: port)
        connection.send("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: \(lastEventID)\r\n\r\n")
        let text = await connection.read(until: { $0.contains(": keep-alive") || $0.contains("event: ") }, timeout: .seconds(5))
        try await Task.sleep(for: .milliseconds(300))
        connection.hangUp()
        return (text.components(separatedBy: "\r\n").first ?? "", ServerSentEvent.parse(text))
    }

    /// `Last-Event-ID` of `GET /v1/events` is milliseconds since 1970: values that are not a
    /// usable id (non-finite, exponents, past 2^64, signs) are ignored, a far-future id replays
    /// nothing, and the node survives every one of them.
    @Test func anUnusableLastEventIDIsIgnoredAndTheNodeLives() async throws {
        let dir = try TemporaryDirectory("e2e-last-event-id")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:e.sqlite", "--workers", "1"], directory: dir)
        #expect(try await node.client.post("/v1/sources", #"{"name": "s", "kind": "synthetic", "config": {"records": 5}}"#).status == 201)
        let id = try #require(try await node.client.post("/v1/sources/s/syncs").json["id"]?.stringValue)
        _ = try await eventually(timeout: .seconds(20)) { () -> Bool? in
            try await node.client.get("/v1/syncs/\(id)").json["status"] == .string("completed") ? true : nil
        }
        // An id from before the sync replays it.
        let (_, replay) = try await events(port: node.port, lastEventID: "1000")
        #expect(replay.contains { $0.data["id"] == .string(id) }, "\(replay)")
        for hostile in ["inf", "-inf", "nan", "1e20", "1e308", "18446744073709551616", "99999999999999999999999",
                        "9007199254740993", "281474976710656", "-1", "+5", "0x10", "1.5", "", "\u{FF11}\u{FF12}"] {
            let (head, events) = try await events(port: node.port, lastEventID: hostile)
            #expect(head == "HTTP/1.1 200 OK", "\(hostile): \(head)")
            // Ignored, or the far future: the completed sync is not replayed.
            #expect(!events.contains { $0.data["id"] == .string(id) }, "\(hostile) replayed \(events)")
            #expect(node.process.isRunning, "the node died on Last-Event-ID: \(hostile)")
        }
        #expect(try await node.client.get("/healthz").status == 200)
        #expect(try await node.terminate() == 0)
    }
}
