import Foundation
import Testing
import SyncCore
import TestSupport

/// Operating flags and topologies docs/operations.md describes, on the real binary.
@Suite("Operations through the real binary")
struct OperationsProcessTests {
    func runSyncs(_ node: TributaryProcess, _ source: String, count: Int) async throws -> [String] {
        var ids: [String] = []
        for _ in 0..<count {
            let id = try #require(try await node.client.post("/v1/sources/\(source)/syncs").json["id"]?.stringValue)
            _ = try await eventually(timeout: .seconds(20)) { try await node.client.get("/v1/syncs/\(id)").json["status"] == .string("completed") ? true : nil }
            ids.append(id)
        }
        return ids
    }

    /// `--retention-days 0 --retention-keep 1 --prune-interval 1`: the node's own pruner keeps
    /// the newest finished sync of the source and deletes the others within seconds;
    /// `--prune-interval 0` never prunes on its own.
    @Test func theRetentionFlagsPruneOnTheirOwnOrNever() async throws {
        let dir = try TemporaryDirectory("e2e-retention")
        defer { dir.remove() }
        for (interval, kept) in [("1", 1), ("0", 3)] {
            let node = try await TributaryProcess(serve: ["--database", "sqlite:r\(interval).sqlite", "--workers", "1", "--retention-days", "0",
                                                          "--retention-keep", "1", "--prune-interval", interval], directory: dir, name: "r\(interval)")
            #expect(try await node.client.post("/v1/sources", #"{"name": "s", "kind": "synthetic", "config": {"records": 2}}"#).status == 201)
            let ids = try await runSyncs(node, "s", count: 3)
            try await Task.sleep(for: .seconds(3))  // three prune intervals
            let listed = try await node.client.get("/v1/syncs?limit=10").json["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
            #expect(listed.count == kept, "--prune-interval \(interval): \(listed)")
            #expect(listed.contains(ids[2]), "the newest is kept")
            #expect(try await node.terminate() == 0)
        }
    }

    /// Two processes on one SQLite file: a stream opened on the API process follows a sync the
    /// worker process runs, page by page, to its end.
    @Test func aStreamFollowsASyncRunByAnotherProcessOnTheSameFile() async throws {
        let dir = try TemporaryDirectory("e2e-events-file")
        defer { dir.remove() }
        let api = try await TributaryProcess(serve: ["--database", "sqlite:shared.sqlite", "--role", "api"], directory: dir, name: "api")
        let worker = try await TributaryProcess(serve: ["--database", "sqlite:shared.sqlite", "--role", "worker", "--workers", "1"], directory: dir, name: "worker")
        let body = #"{"name": "slow", "kind": "synthetic", "config": {"records": 50, "page_size": 10, "delay_ms_per_page": 200}}"#
        #expect(try await api.client.post("/v1/sources", body).status == 201)
        let id = try #require(try await api.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        let connection = try RawConnection(port: api.port)
        connection.send("GET /v1/syncs/\(id)/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let text = await connection.read(until: { ServerSentEvent.parse($0).contains { $0.event == "status" && $0.data["status"] == .string("completed") } },
                                         timeout: .seconds(30))
        connection.hangUp()
        let events = ServerSentEvent.parse(text)
        let pages = events.filter { $0.event == "progress" }.compactMap { $0.data["pages"]?.intValue }
        #expect(pages == pages.sorted() && pages.last == 5, "\(pages)")
        #expect(pages.contains { $0 > 0 && $0 < 5 }, "no progress while it ran in the other process: \(pages)")
        #expect(events.last?.data["attempts"]?.arrayValue?.first?["node"] != nil)
        #expect(try await api.terminate() == 0)
        #expect(try await worker.terminate() == 0)
    }
}
