import Foundation
import Testing
import SyncCore
import TestSupport

/// `--log-format json` on the real binary: every line an object, the ids on the lines they
/// concern, and no secret anywhere, at debug level, through a failing and a passing sync.
@Suite("Logs of the real binary")
struct LogProcessTests {
    @Test func jsonLogsCarryTheirIdsAndNoSecret() async throws {
        let dir = try TemporaryDirectory("e2e-logs")
        defer { dir.remove() }
        let fixture = FixtureUpstream(items: 5)
        try await fixture.start()
        defer { Task { await fixture.stop() } }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:l.sqlite", "--workers", "2", "--log-format", "json"],
                                              directory: dir, environment: ["LOG_LEVEL": "debug"])
        let secrets = ["hunter2-secret", "pw-s3cret", "k3y-secret", "xk-secret", "wh-s3cret", "wh-t0ken"]
        let notify = #"[{"url": "http://127.0.0.1:\#(fixture.port)/hooks/l?token=wh-t0ken", "secret": "wh-s3cret"}]"#
        let config = #"""
            {"url": "http://alice:pw-s3cret@127.0.0.1:\#(fixture.port)/PATH?api_key=k3y-secret", "records_path": "/rows", "primary_key": "id",
             "headers": {"Authorization": "Bearer hunter2-secret"}, "query": {"X-Api-Key": "xk-secret"}}
            """#
        for (name, path) in [("good", "none"), ("denied", "page")] {
            let body = #"{"name": "\#(name)", "kind": "http-json", "config": \#(config.replacingOccurrences(of: "PATH", with: path)), "retry": {"max_attempts": 1}, "notify": \#(notify)}"#
            #expect(try await node.client.post("/v1/sources", body).status == 201)
        }
        fixture.inject(.status(401), path: "/page", times: 1)
        var ids: [String] = []
        for name in ["good", "denied"] {
            let queued = try await node.client.post("/v1/sources/\(name)/syncs")
            #expect(queued.status == 202)
            ids.append(try #require(queued.json["id"]?.stringValue))
        }
        for id in ids {
            _ = try await eventually(timeout: .seconds(30)) { () -> Bool? in
                let s = try await node.client.get("/v1/syncs/\(id)").json["status"]?.stringValue ?? ""
                return ["completed", "failed"].contains(s) ? true : nil
            }
        }
        // Both syncs' webhooks are delivered (and logged at debug) before the log is read.
        _ = try await eventually(timeout: .seconds(30)) { fixture.requests(path: "/hooks/l").count >= 2 ? true : nil }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await node.client.post("/v1/sources", #"{"name": "good", "kind": "synthetic", "config": {"records": 1}}"#).status == 409)
        #expect(try await node.client.get("/v1/sources/good").text.contains("hunter2-secret") == false)
        #expect(try await node.terminate() == 0)

        let lines = node.log.split(separator: "\n")
        #expect(lines.count >= 6)
        var objects: [JSONValue] = []
        for line in lines {
            let object = try? parseJSON(Array(line.utf8))
            #expect(object?["timestamp"]?.stringValue.flatMap(Timestamp.parse) != nil, "not a JSON log line: \(line)")
            #expect(object?["level"]?.stringValue != nil && object?["message"]?.stringValue != nil, "\(line)")
            if let object { objects.append(object) }
        }
        for secret in secrets { #expect(!node.log.contains(secret), "the log shows \(secret)") }
        // Lines about a sync name it, its source and the attempt.
        let started = objects.filter { $0["message"] == .string("sync attempt started") }
        #expect(Set(started.compactMap { $0["sync_id"]?.stringValue }) == Set(ids))
        #expect(Set(started.compactMap { $0["source"]?.stringValue }) == ["good", "denied"])
        #expect(started.allSatisfy { $0["attempt"] == .string("1") })
        let ended = objects.filter { $0["message"] == .string("sync attempt ended") }
        #expect(Set(ended.compactMap { $0["status"]?.stringValue }) == ["completed", "failed"])
        // A line about a request carries its id.
        let refused = objects.filter { ($0["message"]?.stringValue ?? "").hasPrefix("request refused") }
        #expect(!refused.isEmpty && refused.allSatisfy { $0["request_id"]?.stringValue?.hasPrefix("req_") == true }, "\(refused)")
    }
}
