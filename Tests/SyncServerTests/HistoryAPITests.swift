import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// `GET /v1/stats` and `POST /v1/maintenance/prune` over HTTP.
@Suite("Statistics and pruning over HTTP")
struct HistoryAPITests {
    @Test(arguments: StoreBackend.allCases)
    func statsCountWhatRanAndPruneDeletesIt(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 2).test { client in
            let before = try await client.call(.get, "/v1/stats")
            #expect(before.status == .ok)
            #expect(before.json["window"] == .string("24h"))
            #expect(before.json["success_rate"] == .null)
            #expect(before.json["duration_seconds"]?["p50"] == .null)
            #expect(before.json["syncs"]?["completed"] == .number(0))
            _ = try await client.createSource("a", records: 30, pageSize: 10)
            _ = try await client.createSource("b", records: 5, pageSize: 5)
            var ids: [String] = []
            for name in ["a", "b", "a"] { ids.append(try #require(try await client.runSync(name)["id"]?.stringValue)) }
            let stats = try await client.call(.get, "/v1/stats?window=1h").json
            #expect(stats["window"] == .string("1h"))
            #expect(stats["syncs"]?["completed"] == .number(3))
            #expect(stats["success_rate"] == .number(1))
            #expect(stats["records"]?["read"] == .number(65))
            #expect(stats["records"]?["created"] == .number(35))
            #expect(stats["records"]?["unchanged"] == .number(30))
            #expect(stats["queue"]?["depth"] == .number(0))
            #expect(stats["queue"]?["oldest_queued_seconds"] == .null)
            let bySource = stats["by_source"]?.arrayValue ?? []
            #expect(bySource.map { $0["name"] } == [.string("a"), .string("b")])
            #expect(bySource.first?["completed"] == .number(2))
            #expect(bySource.first?["last_success_at"]?.stringValue != nil)
            let p50 = try #require(stats["duration_seconds"]?["p50"]?.doubleValue)
            let max = try #require(stats["duration_seconds"]?["max"]?.doubleValue)
            #expect(p50 >= 0 && p50 <= max)

            // Pruning with the defaults (30 days) deletes nothing recent; with no age and no
            // keep it deletes every finished sync, and their records stay.
            #expect(try await client.call(.post, "/v1/maintenance/prune").json["deleted_syncs"] == .number(0))
            let pruned = try await client.call(.post, "/v1/maintenance/prune", #"{"older_than_seconds": 0, "keep_last_per_source": 0}"#)
            #expect(pruned.status == .ok)
            #expect(pruned.json["deleted_syncs"] == .number(3))
            for id in ids { #expect(try await client.call(.get, "/v1/syncs/\(id)").status == .notFound) }
            let records = try await client.call(.get, "/v1/sources/a/records?limit=1").json["items"]?.arrayValue?.first
            #expect(records?["sync_id"] == .null)
            #expect(try await client.call(.get, "/v1/stats").json["syncs"]?["completed"] == .number(0))
        }
    }

    /// The pruner running every 50 ms (keep 2, no age) while syncs run: every sync still
    /// completes with exact counts, and each source ends with its newest two.
    @Test(arguments: StoreBackend.allCases)
    func pruningWhileSyncsRun(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 3, retention: RetentionPolicy(olderThanSeconds: 0, keepLastPerSource: 2),
                           pruneInterval: .milliseconds(50)).test { client in
            let names = ["p1", "p2", "p3"]
            var sourceIDs: [String: String] = [:]
            for name in names {
                sourceIDs[name] = try await client.createSource(name, records: 20, pageSize: 5, extra: #", "retry": {"max_attempts": 1}"#)["id"]?.stringValue
            }
            var newest: [String: [String]] = [:]
            try await withThrowingTaskGroup(of: (String, [String]).self) { group in
                for name in names {
                    group.addTask {
                        var ids: [String] = []
                        for _ in 0..<6 {
                            let sync = try await client.runSync(name)
                            #expect(sync["status"] == .string("completed"), "\(sync)")
                            #expect(sync["result"]?["records_read"] == .number(20))
                            ids.append(sync["id"]?.stringValue ?? "")
                        }
                        return (name, ids)
                    }
                }
                for try await (name, ids) in group { newest[name] = Array(ids.suffix(2)) }
            }
            for name in names {
                let sourceID = sourceIDs[name] ?? ""
                let kept = try await eventually { () -> [String]? in
                    let items = try await client.call(.get, "/v1/syncs?source_id=\(sourceID)").json["items"]?.arrayValue ?? []
                    return items.count == 2 ? items.compactMap { $0["id"]?.stringValue } : nil
                }
                #expect(Set(kept) == Set(newest[name] ?? []), "\(name)")
            }
        }
    }

    @Test func badWindowsAndPruneBodiesAre422() async throws {
        try await TestNode().test { client in
            for window in ["", "24H", "2h", "1h;drop", "%00", "30d%20", String(repeating: "7", count: 5000)] {
                let r = try await client.call(.get, "/v1/stats?window=\(window)")
                #expect(r.status == .unprocessableContent, "\(window.prefix(20))")
                #expect(r.json["errors"]?.arrayValue?.first?["field"] == .string("window"))
            }
            for (body, field) in [(#"{"older_than_seconds": -1}"#, "older_than_seconds"), (#"{"older_than_seconds": 1e400}"#, ""),
                                  (#"{"older_than_seconds": "30d"}"#, "older_than_seconds"), (#"{"older_than_seconds": 1e12}"#, "older_than_seconds"),
                                  (#"{"keep_last_per_source": 1.5}"#, "keep_last_per_source"), (#"{"keep_last_per_source": 18446744073709551616}"#, "keep_last_per_source"),
                                  (#"{"keep_last_per_source": null}"#, "keep_last_per_source"), (#"{"keep": 1}"#, "keep"), ("[]", "body")] {
                let r = try await client.call(.post, "/v1/maintenance/prune", body)
                #expect([.unprocessableContent, .badRequest].contains(r.status), "\(body): \(String(buffer: r.body))")
                #expect(r.problemCode == "validation_failed", "\(body)")
                if !field.isEmpty { #expect(r.json["errors"]?.arrayValue?.first?["field"] == .string(field), "\(body)") }
            }
        }
    }

    @Test func aViewerReadsStatsButCannotPrune() async throws {
        try await TestNode(tokens: ["v-token": .viewer, "a-token": .admin]).test { client in
            let viewer: HTTPFields = [.authorization: "Bearer v-token"]
            #expect(try await client.call(.get, "/v1/stats", headers: viewer).status == .ok)
            let refused = try await client.call(.post, "/v1/maintenance/prune", headers: viewer)
            #expect(refused.status == .forbidden)
            #expect(refused.problemCode == "forbidden")
            #expect(try await client.call(.post, "/v1/maintenance/prune", headers: [.authorization: "Bearer a-token"]).status == .ok)
            #expect(try await client.call(.get, "/v1/stats").status == .unauthorized)
        }
    }
}
