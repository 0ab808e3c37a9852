import Foundation
import Testing
import SyncCore
import TestSupport

/// Server-sent events through the real binary: a stream of everything, a sync running on
/// another node, many clients coming and going, and the cap on open streams.
@Suite("Server-sent events through the real binary")
struct EventProcessTests {
    static let slowSource = #"{"name": "slow", "kind": "synthetic", "config": {"records": 50, "page_size": 10, "delay_ms_per_page": 200}}"#

    /// Opens an event stream by hand and reads until `done` holds for the events so far.
    func stream(port: Int, _ path: String, lastEventID: String? = nil, timeout: Duration = .seconds(30),
                until done: @escaping ([ServerSentEvent]) -> Bool) async throws -> (head: String, events: [ServerSentEvent]) {
        let connection = try RawConnection(port: port)
        connection.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" + (lastEventID.map { "Last-Event-ID: \($0)\r\n" } ?? "") + "\r\n")
        let text = await connection.read(until: { done(ServerSentEvent.parse($0)) }, timeout: timeout)
        connection.hangUp()
        return (text.components(separatedBy: "\r\n").first ?? "", ServerSentEvent.parse(text))
    }

    @Test func theStreamOfEverythingShowsASyncFromStartToEnd() async throws {
        let dir = try TemporaryDirectory("e2e-events")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:e.sqlite", "--workers", "1"], directory: dir)
        #expect(try await node.client.post("/v1/sources", Self.slowSource).status == 201)
        async let watched = stream(port: node.port, "/v1/events") { events in
            events.contains { $0.event == "status" && $0.data["status"] == .string("completed") }
        }
        try await Task.sleep(for: .milliseconds(500))  // the stream is open before the sync is queued
        let id = try #require(try await node.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        let (head, events) = try await watched
        #expect(head == "HTTP/1.1 200 OK")
        let mine = events.filter { ($0.data["id"] ?? $0.data["sync_id"]) == .string(id) }
        let statuses = mine.filter { $0.event == "status" }.compactMap { $0.data["status"]?.stringValue }
        #expect(statuses.first == "queued" || statuses.first == "running", "\(statuses)")
        #expect(statuses.last == "completed")
        let pages = mine.filter { $0.event == "progress" }.compactMap { $0.data["progress"]?["pages"]?.intValue }
        #expect(!pages.isEmpty && pages == pages.sorted(), "\(pages)")
        #expect(events.allSatisfy { $0.id.flatMap(Int64.init) != nil })
        // Reconnecting with the last id seen replays what finished since: the sync's end.
        let since = try #require(mine.first?.id)
        let (_, replay) = try await stream(port: node.port, "/v1/events", lastEventID: since, timeout: .seconds(10)) { events in
            events.contains { $0.data["id"] == .string(id) && $0.data["status"] == .string("completed") }
        }
        #expect(replay.contains { $0.data["id"] == .string(id) && $0.data["status"] == .string("completed") })
        #expect(try await node.terminate() == 0)
    }

    @Test func aSyncRunningOnAnotherNodeIsStreamedToTheEnd() async throws {
        let dir = try TemporaryDirectory("e2e-events-pg")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("events")
        let api = try await TributaryProcess(serve: ["--database", database, "--role", "api"], directory: dir, name: "api")
        let worker = try await TributaryProcess(serve: ["--database", database, "--role", "worker", "--workers", "2"], directory: dir, name: "worker")
        #expect(try await api.client.post("/v1/sources", Self.slowSource).status == 201)
        let id = try #require(try await api.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        let (head, events) = try await stream(port: api.port, "/v1/syncs/\(id)/events") { events in
            events.contains { $0.event == "status" && $0.data["status"] == .string("completed") }
        }
        #expect(head == "HTTP/1.1 200 OK")
        let pages = events.filter { $0.event == "progress" }.compactMap { $0.data["pages"]?.intValue }
        #expect(pages == pages.sorted() && pages.last == 5, "\(pages)")
        #expect(pages.contains { $0 > 0 && $0 < 5 }, "no progress while it ran on the other node: \(pages)")
        #expect(events.last?.data["attempts"]?.arrayValue?.first?["node"] != nil)
        #expect(try await api.terminate() == 0)
        #expect(try await worker.terminate() == 0)
    }

    /// On a stream with nothing to say, a comment line (`: keep-alive`) comes every 15 s, so
    /// proxies and clients see the connection is alive.
    @Test func anIdleStreamSaysItIsAliveEveryFifteenSeconds() async throws {
        let dir = try TemporaryDirectory("e2e-events-keepalive")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:k.sqlite", "--workers", "0"], directory: dir)
        let connection = try RawConnection(port: node.port)
        connection.send("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let first = await connection.read(until: { $0.contains(": keep-alive") }, timeout: .seconds(10))
        #expect(first.hasPrefix("HTTP/1.1 200"))
        let opened = ContinuousClock.now
        let text = await connection.read(until: { $0.contains(": keep-alive") }, timeout: .seconds(25))
        let gap = ContinuousClock.now - opened
        connection.hangUp()
        #expect(text.contains(": keep-alive"), "no second keep-alive within 25 s")
        #expect(gap >= .seconds(13) && gap <= .seconds(18), "the next keep-alive came after \(gap)")
        #expect(!text.contains("event:"), "an idle stream sent an event")
        #expect(try await node.terminate() == 0)
    }

    /// `GET /v1/events?source_id=` carries only that source's syncs (by id or by name), with
    /// the header that keeps nginx from buffering the stream.
    @Test func aSourcesStreamCarriesOnlyThatSource() async throws {
        let dir = try TemporaryDirectory("e2e-events-source")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:o.sqlite", "--workers", "2"], directory: dir)
        for name in ["mine", "other"] {
            let body = #"{"name": "\#(name)", "kind": "synthetic", "config": {"records": 20, "page_size": 5, "delay_ms_per_page": 150}}"#
            #expect(try await node.client.post("/v1/sources", body).status == 201)
        }
        let mineID = try #require(try await node.client.get("/v1/sources/mine").json["id"]?.stringValue)
        for filter in ["mine", mineID] {
            async let watched = stream(port: node.port, "/v1/events?source_id=\(filter)") { events in
                events.contains { $0.event == "status" && $0.data["source_id"] == .string(mineID) && $0.data["status"] == .string("completed") }
            }
            try await Task.sleep(for: .milliseconds(500))
            let other = try #require(try await node.client.post("/v1/sources/other/syncs").json["id"]?.stringValue)
            let mine = try #require(try await node.client.post("/v1/sources/mine/syncs").json["id"]?.stringValue)
            let (head, events) = try await watched
            #expect(head == "HTTP/1.1 200 OK")
            #expect(events.contains { ($0.data["id"] ?? $0.data["sync_id"]) == .string(mine) })
            let strays = events.filter { ($0.data["source_id"] ?? .null) != .string(mineID) || ($0.data["id"] ?? $0.data["sync_id"]) == .string(other) }
            #expect(strays.isEmpty, "\(filter): events of another source: \(strays.prefix(3))")
            _ = try await eventually { try await node.client.get("/v1/syncs/\(other)").json["status"] == .string("completed") ? true : nil }
        }
        let raw = try RawConnection(port: node.port)
        raw.send("GET /v1/events?source_id=mine HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let text = await raw.read(until: { $0.contains("\r\n\r\n") }, timeout: .seconds(10))
        raw.hangUp()
        #expect(text.lowercased().contains("x-accel-buffering: no"), "\(text.prefix(400))")
        #expect(try await node.terminate() == 0)
    }

    /// Under a cap of 4 streams: 400 clients that reset right after asking, and 300 `HEAD`s of
    /// both stream routes on one connection, leave every slot free; a held stream closed by
    /// its client frees its slot for the next. (Resets once kept their slot for good, and
    /// each HEAD held one until its connection closed.)
    @Test func everyWayAStreamEndsFreesItsSlot() async throws {
        let dir = try TemporaryDirectory("e2e-events-slots")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:s.sqlite", "--workers", "0", "--max-event-streams", "4"], directory: dir)
        #expect(try await node.client.post("/v1/sources", Self.slowSource).status == 201)
        let queued = try await node.client.post("/v1/sources/slow/syncs", "{}")
        let syncID = try #require(queued.json["id"]?.stringValue)
        for round in 0..<400 {
            let path = round % 2 == 0 ? "/v1/events" : "/v1/syncs/\(syncID)/events"
            try RawConnection.sendAndReset(port: node.port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        }
        let heads = try RawConnection(port: node.port)
        for round in 0..<300 {
            let path = round % 2 == 0 ? "/v1/events" : "/v1/syncs/\(syncID)/events"
            heads.send("HEAD \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        }
        let answered = await heads.read(until: { $0.components(separatedBy: "HTTP/1.1 ").count > 300 }, timeout: .seconds(30))
        #expect(answered.components(separatedBy: "HTTP/1.1 200").count - 1 == 300, "HEAD answers: \(answered.prefix(300))")
        #expect(!answered.contains("event:"), "a HEAD carries no stream")
        // The connection with 300 HEADs stays open: its HEADs must hold nothing.
        // Every slot is free again (the resets are noticed within moments): 4 streams open.
        func open() async throws -> (RawConnection, String) {
            let connection = try RawConnection(port: node.port)
            connection.send("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            return (connection, await connection.read(until: { $0.contains("\r\n\r\n") }, timeout: .seconds(10)))
        }
        var held: [RawConnection] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while held.count < 4 && ContinuousClock.now < deadline {
            let (connection, head) = try await open()
            if head.hasPrefix("HTTP/1.1 200") { held.append(connection) } else { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(held.count == 4, "streams accepted after the resets and HEADs: \(held.count) of 4")
        let (_, fifth) = try await open()
        #expect(fifth.hasPrefix("HTTP/1.1 503"), "the cap holds: \(fifth.prefix(40))")
        // A client closing one held stream frees its slot for the next.
        held.removeFirst().hangUp()
        var next = ""
        let again = ContinuousClock.now + .seconds(10)
        repeat {
            (_, next) = try await open()
            if next.hasPrefix("HTTP/1.1 200") { break }
            try await Task.sleep(for: .milliseconds(100))
        } while ContinuousClock.now < again
        #expect(next.hasPrefix("HTTP/1.1 200"), "after one stream closed: \(next.prefix(40))")
        heads.hangUp()
        for connection in held { connection.hangUp() }
        #expect(try await node.terminate() == 0)
    }

    /// 200 clients open streams and leave, in waves of 20 under a cap of 20: each wave fills
    /// the cap only if every earlier stream gave its slot back, the server's open descriptors
    /// come back to where they were, and the cap refuses the stream past it with a 503.
    @Test func manyClientsComeAndGoWithoutALeakAndTheCapHolds() async throws {
        let dir = try TemporaryDirectory("e2e-events-many")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:m.sqlite", "--workers", "0", "--max-event-streams", "20"], directory: dir)
        #expect(try await node.client.post("/v1/sources", Self.slowSource).status == 201)
        let fdDirectory = "/proc/\(node.process.pid)/fd"
        @Sendable func openDescriptors() throws -> Int { try FileManager.default.contentsOfDirectory(atPath: fdDirectory).count }
        /// One client: opens a stream (asking again while the cap is full, for up to 10 s, as
        /// the slots of the wave before are given back), reads its first bytes and leaves.
        @Sendable func visit(_ i: Int) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(10)
            while true {
                let connection = try RawConnection(port: node.port)
                connection.send("GET \(i % 2 == 0 ? "/v1/events" : "/v1/events?source_id=slow") HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                let text = await connection.read(until: { $0.contains("keep-alive") || $0.contains("event:") || $0.hasPrefix("HTTP/1.1 503") }, timeout: .seconds(20))
                connection.hangUp()
                if text.hasPrefix("HTTP/1.1 200") { return true }
                guard text.hasPrefix("HTTP/1.1 503"), ContinuousClock.now < deadline else { return false }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        func wave(_ first: Int) async throws -> Int {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in first..<(first + 20) { group.addTask { try await visit(i) } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
        }
        // Warm up: the database's reader connections open on first use and stay (not a leak).
        for w in 0..<3 { _ = try await wave(w * 20) }
        try await Task.sleep(for: .seconds(1))
        let before = try openDescriptors()
        #expect(before > 0)
        var opened = 0
        for w in 0..<10 { opened += try await wave(w * 20) }
        #expect(opened == 200, "streams opened in 10 waves of 20 under a cap of 20")
        var after = try openDescriptors()
        let deadline = ContinuousClock.now + .seconds(20)
        while after > before && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            after = try openDescriptors()
        }
        #expect(after <= before, "descriptors before \(before), after \(after)")
        #expect(try await node.terminate() == 0)

        let capped = try await TributaryProcess(serve: ["--database", "sqlite:c.sqlite", "--workers", "0", "--max-event-streams", "2"], directory: dir, name: "capped")
        let held = try (0..<2).map { _ in try RawConnection(port: capped.port) }
        for connection in held {
            connection.send("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            _ = await connection.read(until: { $0.contains("\r\n\r\n") }, timeout: .seconds(10))
        }
        let refused = try await capped.client.get("/v1/events")
        #expect(refused.status == 503)
        #expect(refused.json["code"] == .string("unavailable"))
        // Graceful shutdown ends the open streams rather than waiting for them.
        let started = ContinuousClock.now
        #expect(try await capped.terminate(timeout: .seconds(15)) == 0)
        #expect(ContinuousClock.now - started < .seconds(10))
        for connection in held { connection.hangUp() }
    }
}
