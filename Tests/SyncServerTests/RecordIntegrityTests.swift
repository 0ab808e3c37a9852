import Foundation
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// Records that were deleted, merged or refused although the upstream sent them: each case
/// through the API against a real upstream, on both stores.
@Suite("Record integrity: what a sync stores and deletes")
struct RecordIntegrityTests {
    static let pages = #""records_path": "/rows", "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"}"#

    /// A full sync fails after two pages; another sync of the source then runs (full, or
    /// incremental reading one changed record); the first is retried to completion. It must
    /// delete nothing the later sync read: every upstream record stays live.
    @Test(arguments: StoreBackend.allCases, ["full", "incremental"])
    func aRetriedOlderFullSyncKeepsWhatALaterSyncRead(_ backend: StoreBackend, _ laterMode: String) async throws {
        try await withHTTPNode(items: 50, backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("crm", #"""
                {"url": "\#(fixture.baseURL)/next?size=10", \#(Self.pages),
                 "incremental": {"cursor_field": "updated_at", "param": "updated_since"}}
                """#, extra: #", "retry": {"max_attempts": 1}"#)
            let first = try await client.runSync("crm", body: #"{"mode": "full"}"#)
            #expect(first["status"] == .string("completed"))
            fixture.inject(.status(401), path: "/next", after: 2)
            let older = try await client.runSync("crm", body: #"{"mode": "full"}"#)
            #expect(older["status"] == .string("failed"))
            #expect(older["progress"]?["pages"] == .number(2))
            let olderID = try #require(older["id"]?.stringValue)
            // Record 5 (on the failed sync's first page) changes, and the later sync reads it.
            fixture.update(ids: [5])
            let later = try await client.runSync("crm", body: #"{"mode": "\#(laterMode)"}"#)
            #expect(later["status"] == .string("completed"))
            // Record 5, and the newest record again (the cursor parameter is inclusive).
            if laterMode == "incremental" { #expect(later["progress"]?["records_read"] == .number(2)) }
            let retried = try await client.call(.post, "/v1/syncs/\(olderID)/retry")
            #expect(retried.status == .accepted, "\(String(buffer: retried.body))")
            let done = try await client.waitTerminal(olderID)
            #expect(done["status"] == .string("completed"), "\(done["error"] ?? .null)")
            #expect(done["progress"]?["records_deleted"] == .number(0))
            let live = try await client.allRecords("crm")
            #expect(live.count == 50, "live records after the retry: \(live.count)")
            #expect(live["5"]?["data"]?["name"]?.stringValue?.hasPrefix("item-5-v") == true)
            // What no sync read any more is still deleted by the next full sync.
            fixture.delete(ids: [7, 42])
            let full = try await client.runSync("crm", body: #"{"mode": "full"}"#)
            #expect(full["progress"]?["records_deleted"] == .number(2))
            #expect(try await client.allRecords("crm").count == 48)
        }
    }
}
