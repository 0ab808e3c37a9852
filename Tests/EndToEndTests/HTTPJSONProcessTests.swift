import Foundation
import Testing
import SyncCore
import TestSupport

@Suite("http-json through the real binary", .serialized)
struct HTTPJSONProcessTests {
    @Test func sigkillMidSyncResumesAtThePageAfterTheLastCheckpoint() async throws {
        let fixture = FixtureUpstream(items: 400)
        try await fixture.start()
        fixture.setDelay(seconds: 0.1)
        let dir = try TemporaryDirectory("e2e-http")
        defer { dir.remove() }
        let args = ["--database", "sqlite:h.sqlite", "--lease-seconds", "2"]
        let first = try await TributaryProcess(serve: args, directory: dir, name: "first")
        let created = try await first.client.post("/v1/sources", #"""
            {"name": "api", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/next?size=10", "records_path": "/rows",
             "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"}}}
            """#)
        #expect(created.status == 201, "\(created.text)")
        let id = try #require(try await first.client.post("/v1/sources/api/syncs").json["id"]?.stringValue)
        _ = try await eventually(every: .milliseconds(10)) { () -> Bool? in
            (try await first.client.get("/v1/syncs/\(id)").json["progress"]?["pages"]?.intValue ?? 0) >= 5 ? true : nil
        }
        await first.kill()
        let committed = try #require(Int(try await sqlite3(dir.file("h.sqlite"), "SELECT pages FROM syncs WHERE id = '\(id)'")))
        #expect(committed >= 5 && committed < 40, "\(committed) pages committed at the kill")
        let requestsBefore = fixture.requests.count
        fixture.setDelay(seconds: 0)

        let second = try await TributaryProcess(serve: args, directory: dir, name: "second")
        let done = try await eventually(timeout: .seconds(60), every: .milliseconds(50)) { () -> JSONValue? in
            let s = try await second.client.get("/v1/syncs/\(id)").json
            return s["status"]?.stringValue == "completed" ? s : nil
        }
        #expect(done["result"]?["records_created"] == .number(400))
        #expect(done["result"]?["records_read"] == .number(400))
        #expect(done["result"]?["pages"] == .number(40))
        // After the restart the first request continues after a committed page; page 1 is never fetched again.
        let resumed = Array(fixture.requests.dropFirst(requestsBefore))
        let firstResumed = try #require(resumed.first)
        #expect(firstResumed.query.contains("after="), "\(firstResumed.query)")
        #expect(!resumed.contains { !$0.query.contains("after=") })
        // Requests after the restart: exactly the pages not committed at the kill, starting
        // after the last committed one (page N holds ids 10N-9…10N).
        #expect(resumed.count == 40 - committed, "\(resumed.count) requests after the restart, \(committed) pages committed")
        #expect(firstResumed.query.split(separator: "&").contains("after=\(committed * 10)"), "\(firstResumed.query)")
        let records = try await second.client.get("/v1/sources/api/records?limit=1000").json["items"]?.arrayValue ?? []
        #expect(records.count == 400)
        #expect(Set(records.compactMap { $0["key"]?.stringValue }).count == 400)
        #expect(try await second.terminate() == 0)
        await fixture.stop()
    }
}
