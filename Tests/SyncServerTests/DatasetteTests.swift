import Foundation
import GRDB
import Testing
import SyncCore
import TestSupport

/// Syncs a real paginated API nobody here wrote (Datasette), in CI too.
@Suite("Datasette as a real upstream")
struct DatasetteTests {
    @Test func nextURLPaginationAndAnIncrementalGteFilter() async throws {
        let dir = try TemporaryDirectory("datasette")
        defer { dir.remove() }
        let path = dir.file("crm.db")
        let db = try DatabaseQueue(path: path)
        try await db.write { db in
            try db.execute(sql: "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, updated_at TEXT NOT NULL)")
            for i in 1...2500 {
                try db.execute(sql: "INSERT INTO contacts VALUES (?, ?, ?)",
                               arguments: [i, "contact \(i)", String(format: "2026-11-20T10:%02d:%02dZ", i / 60 % 60, i % 60) + String(format: "%04d", i)])
            }
        }
        let datasette = try await DatasetteServer(database: path, directory: dir)
        defer { datasette.stop() }
        try await withHTTPNode(items: 0) { client, _, _ in
            _ = try await client.createHTTPSource("crm", #"""
                {"url": "\#(datasette.baseURL)/crm/contacts.json", "query": {"_shape": "objects", "_size": "1000"},
                 "records_path": "/rows", "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"},
                 "incremental": {"cursor_field": "updated_at", "param": "updated_at__gte"}}
                """#)
            let first = try await client.runSync("crm")
            #expect(first["status"] == .string("completed"), "\(first["error"] ?? .null)")
            #expect(first["result"]?["records_created"] == .number(2500))
            #expect(first["result"]?["pages"] == .number(3))
            let record = try await client.call(.get, "/v1/sources/crm/records/1234").json
            #expect(record["data"]?["name"] == .string("contact 1234"))

            try await db.write { db in
                for i in 2501...2510 {
                    try db.execute(sql: "INSERT INTO contacts VALUES (?, ?, '2026-11-21T00:00:00Z' || ?)", arguments: [i, "new \(i)", String(format: "%04d", i)])
                }
                try db.execute(sql: "UPDATE contacts SET name = name || ' (edited)', updated_at = '2026-11-22T00:00:00Z' || id WHERE id IN (7, 70, 700, 1700, 2499)")
            }
            let second = try await client.runSync("crm")
            #expect(second["status"] == .string("completed"))
            #expect(second["result"]?["records_created"] == .number(10))
            #expect(second["result"]?["records_updated"] == .number(5))
            // Only the changed rows and the boundary row were read.
            #expect(second["result"]?["records_read"]?.intValue ?? 99 <= 16)
            let edited = try await client.call(.get, "/v1/sources/crm/records/700").json
            #expect(edited["data"]?["name"] == .string("contact 700 (edited)"))
        }
    }
}
