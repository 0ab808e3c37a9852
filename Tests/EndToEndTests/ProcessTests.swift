import Foundation
import Testing
import SyncConnectors
import SyncCore
import TestSupport

/// The real binary as a process: killed, terminated, restarted on the same database.
@Suite("Process lifecycle", .serialized)
struct ProcessTests {
    /// A node SIGKILLed mid-sync; a new one on the same file resumes from the checkpoint: the
    /// upstream (which logs every request) is asked after the kill for exactly the pages not
    /// committed, and the store and the counts equal an uninterrupted run.
    @Test func sigkillMidSyncThenRestartResumesFromTheCheckpointWithExactCounts() async throws {
        let dir = try TemporaryDirectory("e2e-kill")
        defer { dir.remove() }
        let fixture = FixtureUpstream(items: 2000)
        try await fixture.start()
        defer { Task { await fixture.stop() } }
        fixture.setDelay(seconds: 0.2)
        let args = ["--database", "sqlite:e2e.sqlite", "--lease-seconds", "2", "--workers", "2"]
        let first = try await TributaryProcess(serve: args, directory: dir, name: "first")
        let body = #"""
            {"name": "slow", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/next?size=100", "records_path": "/rows",
             "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"}}}
            """#
        #expect(try await first.client.post("/v1/sources", body).status == 201)
        let id = try #require(try await first.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        _ = try await eventually(every: .milliseconds(20)) { () -> Int? in
            let pages = try await sync(first.client, id)["progress"]?["pages"]?.intValue ?? 0
            return pages >= 5 ? pages : nil
        }
        await first.kill()
        #expect(!first.isRunning)
        let askedBeforeTheKill = fixture.requests(path: "/next").count
        // What the database holds at the kill, read from the file: the sync was mid-way.
        let committed = try #require(Int(try await sqlite3(dir.file("e2e.sqlite"), "SELECT pages FROM syncs WHERE id = '\(id)'")))
        #expect(committed >= 5 && committed < 20, "\(committed) pages committed at the kill")

        let second = try await TributaryProcess(serve: args, directory: dir, name: "second")
        let done = try await eventually(timeout: .seconds(60), every: .milliseconds(50)) { () -> JSONValue? in
            let s = try await sync(second.client, id)
            return s["status"]?.stringValue == "completed" ? s : nil
        }
        #expect(done["result"]?["records_created"] == .number(2000))
        #expect(done["result"]?["records_read"] == .number(2000))
        #expect(done["result"]?["records_updated"] == .number(0))
        let attempts = try #require(done["attempts"]?.arrayValue)
        #expect(attempts.count == 2)
        #expect(attempts.first?["status"] == .string("queued"))
        // The resumed attempt asked for exactly the pages not committed at the kill (from the
        // checkpoint on), and each page is counted once.
        let askedAfterTheKill = fixture.requests(path: "/next").count - askedBeforeTheKill
        #expect(askedAfterTheKill == 20 - committed, "\(committed) pages committed at the kill, \(askedAfterTheKill) asked after it")
        #expect(done["result"]?["pages"] == .number(20))
        #expect(done["progress"]?["pages"] == .number(20))

        // The record store equals an uninterrupted run: every key once.
        var keys: [String] = []
        var cursor: String?
        repeat {
            let page = try await second.client.get("/v1/sources/slow/records?limit=1000" + (cursor.map { "&after=\($0)" } ?? ""))
            keys += (page.json["items"]?.arrayValue ?? []).compactMap { $0["key"]?.stringValue }
            cursor = page.json["next_cursor"]?.stringValue
        } while cursor != nil
        #expect(keys.count == 2000)
        #expect(Set(keys) == Set((1...2000).map(String.init)))
        #expect(try await second.terminate() == 0)
    }

    @Test func sigtermHandsTheSyncBackAsQueuedAndExitsZero() async throws {
        let dir = try TemporaryDirectory("e2e-term")
        defer { dir.remove() }
        let args = ["--database", "sqlite:e2e.sqlite", "--workers", "1"]
        let first = try await TributaryProcess(serve: args, directory: dir, name: "first")
        try await createSlowSource(first.client, records: 1000, pageSize: 100, delayMs: 200)
        let id = try #require(try await first.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        _ = try await eventually(every: .milliseconds(20)) { () -> Bool? in
            (try await sync(first.client, id)["progress"]?["pages"]?.intValue ?? 0) >= 2 ? true : nil
        }
        let start = ContinuousClock.now
        #expect(try await first.terminate(timeout: .seconds(10)) == 0)
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(first.log.contains("tributary stopped"))

        // Read the database with the server down: a fresh process with no workers.
        let reader = try await TributaryProcess(serve: args.dropLast(2) + ["--workers", "0"], directory: dir, name: "reader")
        let parked = try await sync(reader.client, id)
        #expect(parked["status"] == .string("queued"))
        let pagesAtStop = try #require(parked["progress"]?["pages"]?.intValue)
        #expect(pagesAtStop >= 2 && pagesAtStop < 10)
        #expect(parked["progress"]?["records_created"]?.intValue == pagesAtStop * 100)
        #expect(parked["attempts"]?.arrayValue?.first?["status"] == .string("queued"))
        #expect(parked["error"] == .null)
        #expect(try await reader.terminate() == 0)

        let second = try await TributaryProcess(serve: args, directory: dir, name: "second")
        let done = try await eventually(timeout: .seconds(60), every: .milliseconds(50)) { () -> JSONValue? in
            let s = try await sync(second.client, id)
            return s["status"]?.stringValue == "completed" ? s : nil
        }
        #expect(done["result"]?["records_created"] == .number(1000))
        #expect(done["result"]?["pages"] == .number(10))
        #expect(try await second.terminate() == 0)
    }

    @Test func cancelFromAnotherProcessOnTheSameDatabase() async throws {
        let dir = try TemporaryDirectory("e2e-cancel")
        defer { dir.remove() }
        let worker = try await TributaryProcess(serve: ["--database", "sqlite:e2e.sqlite", "--workers", "1"], directory: dir, name: "worker")
        let api = try await TributaryProcess(serve: ["--database", "sqlite:e2e.sqlite", "--role", "api"], directory: dir, name: "api")
        try await createSlowSource(api.client, records: 100, pageSize: 10, delayMs: 60_000)
        let id = try #require(try await api.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        _ = try await eventually { () -> Bool? in try await sync(api.client, id)["status"]?.stringValue == "running" ? true : nil }
        let start = ContinuousClock.now
        #expect(try await api.client.post("/v1/syncs/\(id)/cancel").status == 202)
        _ = try await eventually(timeout: .seconds(5), every: .milliseconds(20)) { () -> Bool? in
            try await sync(api.client, id)["status"]?.stringValue == "cancelled" ? true : nil
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(try await api.terminate() == 0)
        #expect(try await worker.terminate() == 0)
    }

    @Test func badStartsExitNonZeroWithOneLine() async throws {
        let dir = try TemporaryDirectory("e2e-flags")
        defer { dir.remove() }
        let (code1, out1) = try await runTributary(["serve", "--workers", "lots"], directory: dir)
        #expect(code1 == 3)
        #expect(out1.split(separator: "\n").count == 1, "\(out1)")
        let (code2, out2) = try await runTributary(["serve", "--host", "0.0.0.0", "--port", "0"], directory: dir)
        #expect(code2 != 0)
        #expect(out2.contains("without tokens"))
        let (code3, out3) = try await runTributary(["serve", "--database", "mysql://x"], directory: dir)
        #expect(code3 != 0)
        #expect(out3.split(separator: "\n").count == 1, "\(out3)")
        // An unreachable PostgreSQL: one line, within seconds (the connection deadline is 5 s).
        let start = ContinuousClock.now
        let (code6, out6) = try await runTributary(
            ["serve", "--port", "0", "--database", "postgres://postgres@127.0.0.1:\(try PostgresCluster.freePort())/nothing"], directory: dir)
        #expect(code6 != 0)
        #expect(out6.contains("cannot be reached") && out6.split(separator: "\n").count == 1, "\(out6)")
        #expect(ContinuousClock.now - start < .seconds(20))
        // A port in use.
        let holder = try await TributaryProcess(serve: ["--database", "sqlite:a.sqlite"], directory: dir, name: "holder")
        let (code4, out4) = try await runTributary(["serve", "--database", "sqlite:b.sqlite", "--port", String(holder.port)], directory: dir)
        #expect(code4 != 0)
        #expect(out4.contains("in use"), "\(out4)")
        #expect(try await holder.terminate() == 0)
        // Migrations from the command line, twice.
        for _ in 0..<2 {
            let (code, out) = try await runTributary(["migrate", "--database", "sqlite:m.sqlite"], directory: dir)
            #expect(code == 0, "\(out)")
        }
        let (code5, _) = try await runTributary(["migrate"], directory: dir, environment: ["TRIBUTARY_DATABASE_URL": "sqlite:env.sqlite"])
        #expect(code5 == 0)
        #expect(FileManager.default.fileExists(atPath: dir.file("env.sqlite")))
    }
}
