import Foundation
import Synchronization
import Testing
import SyncCore
import TestSupport

/// A parent→child stream through the real binary: SIGKILLed mid-way, it resumes inside the
/// partition its last checkpoint names and ends with exact counts.
@Suite("parent→child streams through the real binary", .serialized)
struct PartitionProcessTests {
    /// 50 accounts (20 per page) and 3 contacts each (2 per page, then an empty page), with
    /// contact ids repeating across accounts.
    static func answer(_ request: FixtureUpstream.ScriptRequest) -> FixtureUpstream.Scripted {
        if request.path == "/accounts" {
            let page = Int(request.query["page"] ?? "1") ?? 1
            let ids = (1...50).dropFirst((page - 1) * 20).prefix(20)
            return .json(#"{"accounts":[\#(ids.map { #"{"id":"acc_\#($0)"}"# }.joined(separator: ","))]}"#)
        }
        let account = request.path.split(separator: "/").dropFirst().first.map(String.init) ?? ""
        let page = Int(request.query["page"] ?? "1") ?? 1
        let ids = Array((1...3).dropFirst((page - 1) * 2).prefix(2))
        var answer = FixtureUpstream.Scripted.json(#"{"contacts":[\#(ids.map { #"{"id":\#($0),"account":"\#(account)"}"# }.joined(separator: ","))]}"#)
        answer.delay = .milliseconds(30)
        return answer
    }

    @Test func aChildStreamKilledMidWayResumesInsideItsPartitionAndEndsExact() async throws {
        let fixture = FixtureUpstream(items: 0)
        try await fixture.start()
        fixture.script(Self.answer)
        let dir = try TemporaryDirectory("e2e-partitions")
        defer { dir.remove() }
        let args = ["--database", "sqlite:p.sqlite", "--lease-seconds", "2"]
        let first = try await TributaryProcess(serve: args, directory: dir, name: "first")
        let parent = try await first.client.post("/v1/sources", #"""
            {"name": "accounts", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/s/accounts", "records_path": "/accounts",
             "primary_key": "id", "pagination": {"type": "page", "size_param": "per_page", "size": 20}}}
            """#)
        #expect(parent.status == 201, "\(parent.text)")
        let parentSync = try #require(try await first.client.post("/v1/sources/accounts/syncs").json["id"]?.stringValue)
        _ = try await eventually(timeout: .seconds(60), every: .milliseconds(20)) { () -> Bool? in
            try await first.client.get("/v1/syncs/\(parentSync)").json["status"]?.stringValue == "completed" ? true : nil
        }
        let child = try await first.client.post("/v1/sources", #"""
            {"name": "contacts", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/s/accounts/{account_id}/contacts",
             "records_path": "/contacts", "primary_key": "id", "pagination": {"type": "page"},
             "partitions": {"from_source": "accounts", "values": {"account_id": "/id"}}}}
            """#)
        #expect(child.status == 201, "\(child.text)")
        let id = try #require(try await first.client.post("/v1/sources/contacts/syncs").json["id"]?.stringValue)
        _ = try await eventually(timeout: .seconds(60), every: .milliseconds(10)) { () -> Bool? in
            (try await first.client.get("/v1/syncs/\(id)").json["progress"]?["pages"]?.intValue ?? 0) >= 40 ? true : nil
        }
        await first.kill()
        let committedPages = try #require(Int(try await sqlite3(dir.file("p.sqlite"), "SELECT pages FROM syncs WHERE id = '\(id)'")))
        let checkpoint = try parseJSON(Array(try await sqlite3(dir.file("p.sqlite"), "SELECT checkpoint FROM syncs WHERE id = '\(id)'").utf8))
        let partition = try #require(checkpoint["partition"]?["values"]?["account_id"]?.stringValue, "\(checkpoint)")
        #expect(committedPages < 150, "the kill came after the end: \(committedPages) pages")
        let innerPage = checkpoint["inner"]?["page"]?.intValue ?? 1
        let before = fixture.requests.count

        let second = try await TributaryProcess(serve: args, directory: dir, name: "second")
        let done = try await eventually(timeout: .seconds(90), every: .milliseconds(50)) { () -> JSONValue? in
            let s = try await second.client.get("/v1/syncs/\(id)").json
            return s["status"]?.stringValue == "completed" ? s : nil
        }
        #expect(done["result"]?["records_created"] == .number(150), "\(done)")
        #expect(done["result"]?["records_read"] == .number(150), "\(done)")
        #expect(done["result"]?["pages"] == .number(150), "\(done)")
        // The first request after the restart is the checkpoint's page of the checkpoint's partition.
        let resumed = try #require(fixture.requests.dropFirst(before).first)
        #expect(resumed.path == "/s/accounts/\(partition)/contacts", "\(resumed.path), checkpoint \(checkpoint)")
        #expect(resumed.query == "page=\(innerPage)", "\(resumed.query), checkpoint \(checkpoint)")
        // Nothing committed before the kill is asked for again: one request per page, plus at
        // most the two in flight when the node died.
        let contactRequests = fixture.requests.filter { $0.path.hasSuffix("/contacts") }.count
        #expect(contactRequests >= 150 && contactRequests <= 152, "\(contactRequests) requests")
        let records = try await second.client.get("/v1/sources/contacts/records?limit=1000").json["items"]?.arrayValue ?? []
        #expect(Set(records.compactMap { $0["key"]?.stringValue }).count == 150)
        #expect(try await second.terminate() == 0)
        await fixture.stop()
    }
}

/// A JSON Lines export far larger than memory should hold, through the real binary.
@Suite("JSON Lines through the real binary", .serialized)
struct JSONLinesProcessTests {
    /// The peak resident memory of a process (`VmHWM`), in bytes.
    static func peakRSS(_ pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        return kb * 1024
    }

    /// 200 MB of JSON Lines in one answer: every record stored once, peak RSS under 150 MB.
    @Test func a200MBJSONLinesAnswerSyncsInBoundedMemory() async throws {
        let fixture = FixtureUpstream(items: 0)
        try await fixture.start()
        let dir = try TemporaryDirectory("e2e-jsonl")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:l.sqlite"], directory: dir, name: "node")
        let count = 200_000
        let created = try await node.client.post("/v1/sources", #"""
            {"name": "export", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/lines?count=\#(count)&pad=940",
             "format": "jsonl", "primary_key": "id", "timeout_seconds": 600}}
            """#)
        #expect(created.status == 201, "\(created.text)")
        let id = try #require(try await node.client.post("/v1/sources/export/syncs").json["id"]?.stringValue)
        let done = try await eventually(timeout: .seconds(900), every: .milliseconds(200)) { () -> JSONValue? in
            let s = try await node.client.get("/v1/syncs/\(id)").json
            return ["completed", "failed"].contains(s["status"]?.stringValue ?? "") ? s : nil
        }
        #expect(done["status"] == .string("completed"), "\(done)")
        #expect(done["result"]?["records_created"]?.intValue == count, "\(done)")
        let bytes = done["result"]?["bytes_read"]?.intValue ?? 0
        #expect(bytes >= 200_000_000, "\(bytes) bytes read")
        let peak = try #require(Self.peakRSS(node.process.pid))
        #expect(peak < 150 * 1024 * 1024, "peak RSS \(peak / 1024 / 1024) MB")
        print("jsonl 200 MB: \(bytes) bytes, peak RSS \(peak / 1024 / 1024) MB, pages \(done["result"]?["pages"] ?? .null)")
        #expect(try await node.terminate() == 0)
        await fixture.stop()
    }
}
