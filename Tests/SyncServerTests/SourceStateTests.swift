import Foundation
import HummingbirdTesting
import Synchronization
import Testing
import SyncCore
import SyncStore
import TestSupport

/// A source's saved state (the incremental cursor) can always be brought back to the truth:
/// a full sync saves what it read, a new cursor field starts afresh, and an operator can
/// reset state and records. On both stores, through the API, against a real upstream.
@Suite("Source state: cursors that cannot poison a source, and resets")
struct SourceStateTests {
    /// An upstream of rows `{id, updated_at, modified}` that honours `since` on either field.
    final class Rows: Sendable {
        let rows = Mutex<[(id: String, updated: String, modified: String)]>([])
        let sinceSeen = Mutex<[String?]>([])

        func install(on fixture: FixtureUpstream) {
            fixture.script { request in
                self.sinceSeen.withLock { $0.append(request.query["since"]) }
                let field = request.query["field"] ?? "updated_at"
                let since = request.query["since"]
                let rows = self.rows.withLock { $0 }.filter { row in
                    guard let since else { return true }
                    return (field == "modified" ? row.modified : row.updated) > since
                }
                let json = rows.map { #"{"id":"\#($0.id)","updated_at":"\#($0.updated)","modified":"\#($0.modified)"}"# }
                return .json(#"{"rows":[\#(json.joined(separator: ","))]}"#)
            }
        }
    }

    static func config(_ fixture: FixtureUpstream, field: String = "updated_at", param: String = "since") -> String {
        #"{"url": "\#(fixture.baseURL)/s/rows?field=\#(field)", "records_path": "/rows", "primary_key": "id", "incremental": {"cursor_field": "\#(field)", "param": "\#(param)"}}"#
    }

    /// A node whose upstream serves `rows`, with the http-json source `crm` over it.
    static func withRowsSource(_ backend: StoreBackend, _ rows: [(id: String, updated: String, modified: String)],
                               _ body: @Sendable (any TestClientProtocol, FixtureUpstream, Rows) async throws -> Void) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            let upstream = Rows()
            upstream.install(on: fixture)
            upstream.rows.withLock { $0 = rows }
            _ = try await client.createHTTPSource("crm", Self.config(fixture))
            try await body(client, fixture, upstream)
        }
    }

    /// One record dated 2099 set the cursor for good: a full sync that read at most 2026-01-02
    /// kept 2099, and every incremental sync read nothing. A completed full sync now saves
    /// the largest value it read.
    @Test(arguments: StoreBackend.allCases)
    func aFullSyncReplacesAPoisonedCursorWithWhatItRead(_ backend: StoreBackend) async throws {
        try await Self.withRowsSource(backend, [("a", "2026-01-01", "m1"), ("b", "2099-12-31", "m2")]) { client, fixture, upstream in
            #expect(try await client.runSync("crm", body: #"{"mode": "full"}"#)["status"] == .string("completed"))
            #expect(try await client.call(.get, "/v1/sources/crm").json["state"]?["cursor"] == .string("2099-12-31"))
            // The upstream corrects the bad date; an incremental sync cannot see it.
            upstream.rows.withLock { $0[1].updated = "2026-01-02" }
            let stuck = try await client.runSync("crm", body: #"{"mode": "incremental"}"#)
            #expect(stuck["progress"]?["records_read"] == .number(0))
            let full = try await client.runSync("crm", body: #"{"mode": "full"}"#)
            #expect(full["status"] == .string("completed"))
            #expect(try await client.call(.get, "/v1/sources/crm").json["state"]?["cursor"] == .string("2026-01-02"))
            upstream.rows.withLock { $0.append(("c", "2026-01-03", "m3")) }
            let next = try await client.runSync("crm", body: #"{"mode": "incremental"}"#)
            #expect(next["progress"]?["records_read"] == .number(1), "\(next["progress"] ?? .null)")
            #expect(upstream.sinceSeen.withLock { $0.last } == "2026-01-02")
            // A full sync of an upstream with no rows at all leaves no cursor behind.
            upstream.rows.withLock { $0 = [] }
            #expect(try await client.runSync("crm", body: #"{"mode": "full"}"#)["status"] == .string("completed"))
            #expect(try await client.call(.get, "/v1/sources/crm").json["state"]?["cursor"] == .null)
            let after = try await client.runSync("crm", body: #"{"mode": "incremental"}"#)
            #expect(after["status"] == .string("completed"))
            #expect(upstream.sinceSeen.withLock { $0.last } == .some(nil), "an empty cursor is not sent")
        }
    }

    /// Changing `incremental.cursor_field` (or `param`) kept sending the old field's value;
    /// now the saved cursor is cleared and the next incremental sync reads everything.
    @Test(arguments: StoreBackend.allCases)
    func aNewCursorFieldOrParamStartsWithoutACursor(_ backend: StoreBackend) async throws {
        try await Self.withRowsSource(backend, [("a", "2026-01-01", "m1"), ("b", "2026-01-05", "m2")]) { client, fixture, upstream in
            _ = try await client.runSync("crm", body: #"{"mode": "full"}"#)
            #expect(try await client.call(.get, "/v1/sources/crm").json["state"]?["cursor"] == .string("2026-01-05"))
            // A change elsewhere in the config keeps the cursor.
            let same = try await client.call(.patch, "/v1/sources/crm", #"{"config": {"timeout_seconds": 20}}"#)
            #expect(same.status == .ok)
            #expect(same.json["state"]?["cursor"] == .string("2026-01-05"))
            let patched = try await client.call(.patch, "/v1/sources/crm", #"{"config": \#(Self.config(fixture, field: "modified"))}"#)
            #expect(patched.status == .ok, "\(String(buffer: patched.body))")
            #expect(patched.json["state"]?["cursor"] == nil, "\(patched.json["state"] ?? .null)")
            let sync = try await client.runSync("crm", body: #"{"mode": "incremental"}"#)
            #expect(sync["progress"]?["records_read"] == .number(2))
            #expect(upstream.sinceSeen.withLock { $0.last } == .some(nil))
            #expect(try await client.call(.get, "/v1/sources/crm").json["state"]?["cursor"] == .string("m2"))
            // The same field under another parameter name is another cursor too.
            let renamed = try await client.call(.patch, "/v1/sources/crm", #"{"config": {"incremental": {"param": "modified_since"}}}"#)
            #expect(renamed.status == .ok, "\(String(buffer: renamed.body))")
            #expect(renamed.json["state"]?["cursor"] == nil)
        }
    }

    /// `POST /v1/sources/{id}/reset` clears the cursor, marks live records deleted, or both;
    /// each reset is kept in the source's history; an active sync refuses it.
    @Test(arguments: StoreBackend.allCases)
    func anOperatorResetsStateAndRecordsAndTheResetIsKept(_ backend: StoreBackend) async throws {
        try await Self.withRowsSource(backend, [("a", "2026-01-01", "m1"), ("b", "2099-12-31", "m2"), ("c", "2026-01-03", "m3")]) { client, fixture, upstream in
            _ = try await client.runSync("crm", body: #"{"mode": "full"}"#)
            for bad in [#"{"state": false, "records": false}"#, #"{"state": "yes"}"#, #"{"cursor": true}"#, "[]"] {
                let r = try await client.call(.post, "/v1/sources/crm/reset", bad)
                #expect(r.status == .unprocessableContent || r.status == .badRequest, "\(bad): \(r.status)")
            }
            #expect(try await client.call(.get, "/v1/sources/crm").json["state"]?["cursor"] == .string("2099-12-31"))
            let cleared = try await client.call(.post, "/v1/sources/crm/reset", #"{"state": true}"#)
            #expect(cleared.status == .created, "\(String(buffer: cleared.body))")
            #expect(cleared.json["state_before"]?["cursor"] == .string("2099-12-31"))
            #expect(cleared.json["records_deleted"] == .number(0))
            #expect(try await client.call(.get, "/v1/sources/crm").json["state"] == .object([:]))
            #expect(try await client.allRecords("crm").count == 3, "a state reset keeps the records")
            let wiped = try await client.call(.post, "/v1/sources/crm/reset", #"{"state": false, "records": true}"#)
            #expect(wiped.status == .created)
            #expect(wiped.json["records_deleted"] == .number(3))
            #expect(try await client.allRecords("crm").isEmpty)
            #expect(try await client.allRecords("crm", includeDeleted: true).count == 3)
            let again = try await client.call(.post, "/v1/sources/crm/reset", #"{"records": true}"#)
            #expect(again.json["records_deleted"] == .number(0), "deleted records are not counted twice")
            // The history, newest first, paged.
            let page1 = try await client.call(.get, "/v1/sources/crm/resets?limit=2").json
            let items = page1["items"]?.arrayValue ?? []
            #expect(items.map { $0["id"] } == [again.json["id"], wiped.json["id"]])
            let cursor = try #require(page1["next_cursor"]?.stringValue)
            let page2 = try await client.call(.get, "/v1/sources/crm/resets?limit=2&cursor=\(cursor)").json
            #expect(page2["items"]?.arrayValue?.map { $0["id"] } == [cleared.json["id"]])
            // The next incremental sync starts from nothing and brings every record back.
            let sync = try await client.runSync("crm", body: #"{"mode": "incremental"}"#)
            #expect(sync["progress"]?["records_read"] == .number(3))
            #expect(sync["progress"]?["records_created"] == .number(0) && sync["progress"]?["records_updated"] == .number(3),
                    "\(sync["progress"] ?? .null)")
            #expect(try await client.allRecords("crm").count == 3)
            // While a sync is active the reset is refused: it would write its cursor back.
            fixture.inject(.hang(seconds: 3), path: "/s/rows")
            let running = try await client.call(.post, "/v1/sources/crm/syncs", #"{"mode": "full"}"#)
            let runningID = try #require(running.json["id"]?.stringValue)
            let refused = try await client.call(.post, "/v1/sources/crm/reset", #"{"records": true}"#)
            #expect(refused.status == .conflict)
            #expect(refused.json["code"] == .string("source_in_use"))
            #expect(refused.json["active_sync_id"] == .string(runningID))
            _ = try await client.waitTerminal(runningID)
            #expect(try await client.call(.post, "/v1/sources/nope/reset", "{}").status == .notFound)
        }
    }
    /// A full sync cancelled halfway, then a records reset, then a retry of that sync: the
    /// retry starts from the first page (its checkpoint predates the reset) and every record
    /// the upstream has is live at the end. Resuming would leave the pages read before the
    /// cancel deleted by the reset, with a completed full sync saying nothing was deleted.
    @Test(arguments: StoreBackend.allCases)
    func aRetryAfterAResetStartsOverAndLeavesEveryRecordLive(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 1).test { client in
            _ = try await client.call(.post, "/v1/sources", #"{"name": "big", "kind": "synthetic", "config": {"records": 200, "page_size": 10, "delay_ms_per_page": 40}}"#)
            #expect(try await client.runSync("big", body: #"{"mode": "full"}"#)["status"] == .string("completed"))
            let id = try #require(try await client.call(.post, "/v1/sources/big/syncs", #"{"mode": "full"}"#).json["id"]?.stringValue)
            _ = try await eventually(timeout: .seconds(20), every: .milliseconds(20)) { () -> Bool? in
                let pages = try await client.call(.get, "/v1/syncs/\(id)").json["progress"]?["pages"]?.doubleValue ?? 0
                return pages >= 5 ? true : nil
            }
            #expect(try await client.call(.post, "/v1/syncs/\(id)/cancel").status == .accepted)
            #expect(try await client.waitTerminal(id)["status"] == .string("cancelled"))
            let reset = try await client.call(.post, "/v1/sources/big/reset", #"{"records": true}"#)
            #expect(reset.json["records_deleted"] == .number(200))
            #expect(try await client.call(.post, "/v1/syncs/\(id)/retry").status == .accepted)
            let done = try await client.waitTerminal(id)
            #expect(done["status"] == .string("completed"))
            // A fresh run: every record read once, each brought back from the reset.
            #expect(done["progress"]?["records_read"] == .number(200) && done["progress"]?["pages"] == .number(20), "\(done["progress"] ?? .null)")
            #expect(done["progress"]?["records_updated"] == .number(200) && done["progress"]?["records_deleted"] == .number(0),
                    "\(done["progress"] ?? .null)")
            #expect(try await client.allRecords("big").count == 200)
        }
    }
}

