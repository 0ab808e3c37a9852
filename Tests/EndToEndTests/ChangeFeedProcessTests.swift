import Foundation
import Synchronization
import Testing
import SyncCore
import TestSupport

/// What a reader of one source's change feed has seen: its cursor, every change number in the
/// order read, and each key's last op.
struct FeedLog {
    var cursor: String?
    var numbers: [Int64] = []
    var ops: [String: String] = [:]
    var reads: [String: Int] = [:]

    /// Reads one page (`wait` seconds when empty); returns how many items it held.
    mutating func read(_ client: APIClient, _ source: String, limit: Int = 1000, wait: Int = 0) async throws -> Int {
        var uri = "/v1/sources/\(source)/changes?limit=\(limit)&wait=\(wait)"
        if let cursor { uri += "&after=\(cursor)" }
        let r = try await client.get(uri)
        guard r.status == 200 else { throw TimedOut(description: "changes: \(r.status) \(r.text)") }
        let items = r.json["items"]?.arrayValue ?? []
        for item in items {
            let key = item["key"]?.stringValue ?? "?"
            numbers.append(Int64(item["change"]?.intValue ?? -1))
            ops[key] = item["op"]?.stringValue
            reads[key, default: 0] += 1
        }
        cursor = r.json["next_cursor"]?.stringValue
        return items.count
    }

    /// Reads until a page comes back empty.
    mutating func drain(_ client: APIClient, _ source: String) async throws {
        while try await read(client, source) > 0 {}
    }
}

/// The change feed across real processes: a node killed mid-sync, and a reader on another
/// node (another process on the same SQLite file, another PostgreSQL node) during a sync.
@Suite("Change feed across processes", .serialized)
struct ChangeFeedProcessTests {
    /// A node SIGKILLed mid-sync: the feed read from another process holds exactly the pages
    /// committed before the kill (numbers 1…n without a gap, the view agreeing), and after a
    /// new node resumes the sync the same reader gets exactly the rest: every key once.
    @Test func aKillMidSyncLeavesTheFeedAtTheCommittedPages() async throws {
        let dir = try TemporaryDirectory("e2e-feed-kill")
        defer { dir.remove() }
        let args = ["--database", "sqlite:feed.sqlite", "--lease-seconds", "2"]
        let first = try await TributaryProcess(serve: args + ["--workers", "2", "--node-id", "first"], directory: dir, name: "first")
        try await createSlowSource(first.client, name: "slow", records: 2000, pageSize: 100, delayMs: 150)
        let id = try #require(try await first.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        _ = try await eventually(every: .milliseconds(20)) { () -> Int? in
            let pages = try await sync(first.client, id)["progress"]?["pages"]?.intValue ?? 0
            return pages >= 4 ? pages : nil
        }
        await first.kill()
        let committed = try #require(Int(try await sqlite3(dir.file("feed.sqlite"), "SELECT pages FROM syncs WHERE id = '\(id)'")))
        #expect(committed >= 4 && committed < 20, "\(committed) pages committed at the kill")

        // A reader on a node without workers: the feed is the committed pages, nothing more.
        let reader = try await TributaryProcess(serve: args + ["--workers", "0", "--node-id", "reader"], directory: dir, name: "reader")
        var log = FeedLog()
        try await log.drain(reader.client, "slow")
        #expect(log.numbers == (1...Int64(committed * 100)).map { $0 }, "numbers 1…\(committed * 100) in order")
        #expect(Set(log.ops.values) == ["created"])
        let view = try await sqlite3(dir.file("feed.sqlite"), "SELECT count(*) || '|' || max(change) FROM tributary_records WHERE source_name = 'slow'")
        #expect(view == "\(committed * 100)|\(committed * 100)")

        // A worker node resumes the sync from its checkpoint; the reader gets the rest.
        let second = try await TributaryProcess(serve: args + ["--workers", "2", "--node-id", "second"], directory: dir, name: "second")
        _ = try await eventually(timeout: .seconds(60), every: .milliseconds(50)) { () -> Bool? in
            try await sync(second.client, id)["status"]?.stringValue == "completed" ? true : nil
        }
        try await log.drain(reader.client, "slow")
        #expect(log.numbers == (1...2000).map { Int64($0) })
        #expect(log.ops.count == 2000 && log.reads.values.allSatisfy { $0 == 1 }, "every key once")
        #expect(try await second.terminate() == 0)
        #expect(try await reader.terminate() == 0)
    }

    /// A reader on one node pages the feed with `limit=7` while a full sync on another node
    /// (another process on the same SQLite file, another PostgreSQL node) rewrites 20,000
    /// records: it ends with every key once, at its stored state, in increasing numbers;
    /// on SQLite the numbers are exactly 20,001…40,000, so none was skipped.
    @Test(arguments: ["sqlite", "postgres"])
    func aReaderOnAnotherNodeFollowsARewriteToItsEnd(_ store: String) async throws {
        let dir = try TemporaryDirectory("e2e-feed-\(store)")
        defer { dir.remove() }
        let upstream = FixtureUpstream(items: 0)
        try await upstream.start()
        defer { Task { await upstream.stop() } }
        let version = Mutex(1)
        let base = upstream.baseURL
        upstream.script { request in
            let page = Int(request.query["page"] ?? "0") ?? 0
            let v = version.withLock { $0 }
            let rows = (page * 500..<(page + 1) * 500).map { #"{"id":"r\#(String(format: "%05d", $0))","v":\#(v)}"# }.joined(separator: ",")
            let next = page < 39 ? #""\#(base)/s/rows?page=\#(page + 1)""# : "null"
            var reply = FixtureUpstream.Scripted.json(#"{"rows":[\#(rows)],"next_url":\#(next)}"#)
            reply.delay = .milliseconds(150)
            return reply
        }
        let database = store == "sqlite" ? "sqlite:feed.sqlite" : try await PostgresCluster.shared().createDatabase("feedreader")
        let worker = try await TributaryProcess(serve: ["--database", database, "--workers", "2", "--node-id", "worker"], directory: dir, name: "worker")
        let reader = try await TributaryProcess(serve: ["--database", database, "--workers", "0", "--node-id", "reader"], directory: dir, name: "reader")
        #expect(try await worker.client.post("/v1/sources", #"""
            {"name": "live", "kind": "http-json", "config": {"url": "\#(base)/s/rows", "records_path": "/rows", "primary_key": "id",
             "pagination": {"type": "next_url", "path": "/next_url"}}}
            """#).status == 201)
        func syncToEnd() async throws -> String {
            let id = try #require(try await worker.client.post("/v1/sources/live/syncs", #"{"mode": "full"}"#).json["id"]?.stringValue)
            _ = try await eventually(timeout: .seconds(120), every: .milliseconds(50)) { () -> Bool? in
                try await sync(worker.client, id)["status"]?.stringValue == "completed" ? true : nil
            }
            return id
        }
        _ = try await syncToEnd()
        var log = FeedLog()
        try await log.drain(reader.client, "live")
        #expect(log.ops.count == 20_000)
        // The rewrite, read from the other node as it commits.
        version.withLock { $0 = 2 }
        log = FeedLog(cursor: log.cursor)
        let id = try #require(try await worker.client.post("/v1/sources/live/syncs", #"{"mode": "full"}"#).json["id"]?.stringValue)
        var firstRead: Date?
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            let n = try await log.read(reader.client, "live", limit: 7, wait: 1)
            if n > 0, firstRead == nil { firstRead = Date() }
            if n == 0, try await sync(worker.client, id)["status"]?.stringValue == "completed" {
                try await log.drain(reader.client, "live")
                break
            }
        }
        #expect(log.ops.count == 20_000 && Set(log.ops.values) == ["updated"], "every key at its stored state")
        #expect(log.reads.values.allSatisfy { $0 == 1 }, "no key read twice")
        #expect(zip(log.numbers, log.numbers.dropFirst()).allSatisfy { $0 < $1 }, "increasing")
        if store == "sqlite" { #expect(log.numbers == (20_001...40_000).map { Int64($0) }, "no number skipped") }
        let finished = try #require(Timestamp.parse(try await sync(worker.client, id)["finished_at"]?.stringValue ?? ""))
        #expect(try #require(firstRead) < finished, "read while the sync ran")
        #expect(try await worker.terminate() == 0)
        #expect(try await reader.terminate() == 0)
    }

    /// The SQL view reads every stored record on both stores: a body PostgreSQL's `jsonb`
    /// refuses (a `\u0000` escape, a lone surrogate) is `NULL` in `body` there and whole in
    /// `body_text`, and the other rows still read (one such record failed every read).
    @Test(arguments: ["sqlite", "postgres"])
    func theViewReadsEveryRecord(_ store: String) async throws {
        let dir = try TemporaryDirectory("e2e-view-\(store)")
        defer { dir.remove() }
        let upstream = FixtureUpstream(items: 0)
        try await upstream.start()
        defer { Task { await upstream.stop() } }
        upstream.script { _ in .json(#"{"rows":[{"id":"nul","v":"a\u0000b"},{"id":"sur","v":"\ud800"},{"id":"ok","v":"caf\u00e9"},{"id":"plain","v":"x"}]}"#) }
        let database = store == "sqlite" ? "sqlite:view.sqlite" : try await PostgresCluster.shared().createDatabase("view")
        let node = try await TributaryProcess(serve: ["--database", database, "--workers", "1"], directory: dir)
        #expect(try await node.client.post("/v1/sources", #"""
            {"name": "v", "kind": "http-json", "config": {"url": "\#(upstream.baseURL)/s/rows", "records_path": "/rows", "primary_key": "id"}}
            """#).status == 201)
        let id = try #require(try await node.client.post("/v1/sources/v/syncs").json["id"]?.stringValue)
        _ = try await eventually(timeout: .seconds(30), every: .milliseconds(50)) { () -> Bool? in
            try await sync(node.client, id)["status"]?.stringValue == "completed" ? true : nil
        }
        let counts = "SELECT count(*) || '|' || count(body) || '|' || count(body_text) FROM tributary_records"
        let sur = "SELECT body_text FROM tributary_records WHERE key = 'sur'"
        if store == "sqlite" {
            #expect(try await sqlite3(dir.file("view.sqlite"), counts) == "4|4|4")
            #expect(try await sqlite3(dir.file("view.sqlite"), "SELECT json_extract(body, '$.v') FROM tributary_records WHERE key = 'ok'") == "café")
            #expect(try await sqlite3(dir.file("view.sqlite"), sur) == #"{"id":"sur","v":"\ud800"}"#)
        } else {
            #expect(try await PostgresCluster.psql(database, counts).trimmingCharacters(in: .whitespacesAndNewlines) == "4|2|4")
            #expect(try await PostgresCluster.psql(database, "SELECT body->>'v' FROM tributary_records WHERE key = 'ok'")
                .trimmingCharacters(in: .whitespacesAndNewlines) == "café")
            #expect(try await PostgresCluster.psql(database, sur).trimmingCharacters(in: .whitespacesAndNewlines) == #"{"id":"sur","v":"\ud800"}"#)
        }
        #expect(try await node.terminate() == 0)
    }

    /// A client that gives up on a waiting feed request frees its connection at once: with
    /// `--max-connections 5`, six clients that each wait 30 s but hang up after one leave the
    /// node answering at once (it took ~28 s while the abandoned waits held every slot).
    @Test func anAbandonedWaitFreesItsConnection() async throws {
        let dir = try TemporaryDirectory("e2e-feed-gone")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:gone.sqlite", "--workers", "1", "--max-connections", "5"], directory: dir)
        try await createSlowSource(node.client, name: "quiet", records: 3, pageSize: 3, delayMs: 0)
        let id = try #require(try await node.client.post("/v1/sources/quiet/syncs").json["id"]?.stringValue)
        _ = try await eventually(every: .milliseconds(50)) { () -> Bool? in
            try await sync(node.client, id)["status"]?.stringValue == "completed" ? true : nil
        }
        let head = try #require(try await node.client.get("/v1/sources/quiet/changes").json["next_cursor"]?.stringValue)
        let url = "\(node.baseURL)/v1/sources/quiet/changes?after=\(head)&wait=30"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 { group.addTask { _ = try await runCommand("/usr/bin/env", ["curl", "-s", "--max-time", "1", url]) } }
            try await group.waitForAll()
        }
        let start = ContinuousClock.now
        let health = try await node.client.get("/healthz")
        let took = ContinuousClock.now - start
        #expect(health.status == 200)
        #expect(took < .seconds(3), "healthz after the abandoned waits: \(took)")
        #expect(try await node.terminate() == 0)
    }
}
