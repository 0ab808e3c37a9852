import Foundation
import Testing
import SyncCore
@testable import SyncStore
import TestSupport

/// Several real processes on one database, where writes truly race: SQLite serialises them
/// across processes with its file lock, PostgreSQL with row locks.
@Suite("Many processes on one database", .serialized)
struct MultiProcessTests {
    /// Two `tributary serve` worker processes on one SQLite file race for claims and page
    /// commits: every sync runs once (one attempt), every count is exact, both take some.
    @Test func twoWorkerProcessesOnOneSQLiteFileRunEverySyncOnce() async throws {
        let dir = try TemporaryDirectory("e2e-two-sqlite")
        defer { dir.remove() }
        let args = ["--database", "sqlite:shared.sqlite", "--workers", "4", "--lease-seconds", "30"]
        let a = try await TributaryProcess(serve: args + ["--node-id", "a"], directory: dir, name: "a")
        let b = try await TributaryProcess(serve: args + ["--node-id", "b"], directory: dir, name: "b")
        let sources = 40
        for i in 0..<sources {
            try await createSlowSource(a.client, name: "s\(i)", records: 100, pageSize: 20, delayMs: 5)
        }
        var ids: [String] = []
        for i in 0..<sources {
            // Triggers alternate between the two processes' APIs.
            let node = i % 2 == 0 ? a : b
            let r = try await node.client.post("/v1/sources/s\(i)/syncs")
            #expect(r.status == 202, "\(r.text)")
            ids.append(try #require(r.json["id"]?.stringValue))
        }
        let triggered = ids
        let done = try await eventually(timeout: .seconds(120), every: .milliseconds(100)) { () -> [JSONValue]? in
            var all: [JSONValue] = []
            for id in triggered {
                let s = try await sync(a.client, id)
                guard s["status"]?.stringValue == "completed" else { return nil }
                all.append(s)
            }
            return all
        }
        var byNode: [String: Int] = [:]
        for s in done {
            #expect(s["attempt"] == .number(1), "\(s["id"] ?? .null) ran \(s["attempt"] ?? .null) times")
            #expect(s["result"]?["records_created"] == .number(100))
            #expect(s["result"]?["records_read"] == .number(100))
            #expect(s["result"]?["records_updated"] == .number(0))
            #expect(s["result"]?["pages"] == .number(5))
            byNode[s["attempts"]?.arrayValue?.first?["node"]?.stringValue ?? "?", default: 0] += 1
        }
        #expect(byNode.keys.sorted() == ["a", "b"], "\(byNode)")
        let total = try await sqlite3(dir.file("shared.sqlite"), "SELECT count(*), count(DISTINCT source_seq || ':' || key) FROM records")
        #expect(total == "\(sources * 100)|\(sources * 100)")
        #expect(try await a.terminate() == 0)
        #expect(try await b.terminate() == 0)
    }

    /// Six `tributary migrate` processes at once on a fresh database: all succeed, each
    /// migration is applied once, on SQLite and on PostgreSQL.
    @Test func sixMigrateProcessesAtOnceApplyEachMigrationOnce() async throws {
        let dir = try TemporaryDirectory("e2e-migrate")
        defer { dir.remove() }
        let postgres = try await PostgresCluster.shared().createDatabase("migrate6")
        for database in ["sqlite:m.sqlite", postgres] {
            let results = try await withThrowingTaskGroup(of: (Int32, String).self) { group in
                for _ in 0..<6 { group.addTask { try await runTributary(["migrate", "--database", database], directory: dir) } }
                return try await group.reduce(into: [(Int32, String)]()) { $0.append($1) }
            }
            for (code, out) in results { #expect(code == 0, "\(database): \(out)") }
        }
        #expect(try await sqlite3(dir.file("m.sqlite"), "PRAGMA user_version") == String(SchemaHistory.names.count))
        let versions = try await PostgresCluster.psql(postgres, "SELECT string_agg(version::text, ',' ORDER BY version) FROM tributary_schema")
        #expect(versions.trimmingCharacters(in: .whitespacesAndNewlines) == (1...SchemaHistory.names.count).map(String.init).joined(separator: ","),
                "numbered like SQLite")
    }
}
