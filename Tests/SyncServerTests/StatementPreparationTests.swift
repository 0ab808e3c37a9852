import Foundation
import Testing
@testable import SyncStore
import TestSupport

/// SQLite prepares a statement again on every run when its `WHERE` binds a value that the
/// planner compares with a partial index's condition (a status against `status IN (…)`):
/// the cache then saves nothing and the prepare costs more than the read. This drives the
/// API and the workers through their statements many times and asks SQLite how often it
/// prepared each one again (debug builds count it: `SQLiteStatementAudit`).
@Suite("Cached statements stay prepared")
struct StatementPreparationTests {
    @Test func noStatementIsPreparedAgainOnEveryRun() async throws {
        try await TestNode(backend: .sqlite, workers: 2).test { client in
            let a = try #require(try await client.createSource("prep-a", records: 20, pageSize: 5)["id"]?.stringValue)
            let b = try #require(try await client.createSource("prep-b", records: 5, pageSize: 5)["id"]?.stringValue)
            var syncs: [String] = []
            for _ in 0..<6 {
                for name in ["prep-a", "prep-b"] { syncs.append(try #require(try await client.runSync(name)["id"]?.stringValue)) }
                let last = syncs[syncs.count - 1]
                for path in ["/v1/sources", "/v1/sources?limit=1", "/v1/sources/\(a)", "/v1/sources/prep-b", "/v1/sources/\(a)/records?limit=5",
                             "/v1/syncs", "/v1/syncs?status=completed", "/v1/syncs?source_id=\(a)&status=failed&status=completed",
                             "/v1/syncs/\(last)", "/v1/syncs/\(last)/record-errors", "/v1/syncs/\(last)/deliveries", "/v1/stats", "/v1/health",
                             "/", "/sources", "/sources/\(a)", "/syncs", "/syncs/\(last)", "/nodes"] {
                    let response = try await client.call(.get, path)
                    #expect(response.status == .ok, "\(path): \(response.status)")
                }
                _ = try await client.call(.post, "/v1/sources/\(b)/pause")
                _ = try await client.call(.post, "/v1/sources/\(b)/resume")
                _ = try await client.call(.post, "/v1/syncs/\(last)/retry")
                _ = try await client.call(.post, "/v1/syncs/\(last)/cancel")
            }
            let reprepared = SQLiteStatementAudit.reprepared
            #expect(reprepared.isEmpty, "prepared again on half their runs or more: \(reprepared.map { "\($0.value.reprepares) of \($0.value.runs) runs: \($0.key)" }.joined(separator: "\n\n"))")
        }
    }
}
