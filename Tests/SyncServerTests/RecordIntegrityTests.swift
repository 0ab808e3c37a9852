import Foundation
import HummingbirdTesting
import Synchronization
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

    /// Keys are compared by their bytes everywhere: canonically equivalent strings on one page
    /// (`é` precomposed and decomposed, `Å` and U+212B, a Hangul syllable and its jamo) are
    /// distinct records; lone-surrogate escapes, U+0000 and keys past 2,048 bytes are record
    /// errors on both stores while the rest of the page is stored (PostgreSQL once failed the
    /// whole page, and every later sync, as `internal`).
    @Test(arguments: StoreBackend.allCases)
    func keysAreTheirBytesAndAKeyNoStoreHoldsIsOneRecordError(_ backend: StoreBackend) async throws {
        let long = String(repeating: "k", count: 3000)
        let distinct = ["\u{E9}", "e\u{301}", "\u{C5}", "\u{212B}", "A\u{30A}", "\u{D55C}", "\u{1112}\u{1161}\u{11AB}", "plain"]
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            fixture.script { _ in
                var rows = distinct.enumerated().map { #"{"id":"\#($0.element)","n":\#($0.offset)}"# }
                rows += [#"{"id":"\ud800","n":100}"#, #"{"id":"\udc00","n":101}"#, #"{"id":"x\u0000y","n":102}"#, #"{"id":"\#(long)","n":103}"#]
                return .json(#"{"rows":[\#(rows.joined(separator: ","))]}"#)
            }
            _ = try await client.createHTTPSource("keys", #"{"url": "\#(fixture.baseURL)/s/k", "records_path": "/rows", "primary_key": "id"}"#,
                                                  extra: #", "retry": {"max_attempts": 1}"#)
            for round in 1...2 {
                let sync = try await client.runSync("keys", body: #"{"mode": "full"}"#)
                #expect(sync["status"] == .string("completed"), "round \(round): \(sync["error"] ?? .null)")
                #expect(sync["progress"]?["records_failed"] == .number(4), "round \(round)")
                #expect(sync["progress"]?["records_deleted"] == .number(0), "round \(round)")
                let id = try #require(sync["id"]?.stringValue)
                let errors = try await client.call(.get, "/v1/syncs/\(id)/record-errors").json["items"]?.arrayValue ?? []
                let messages = errors.compactMap { $0["message"]?.stringValue }
                #expect(messages.filter { $0.contains("lone UTF-16 surrogate") }.count == 2, "\(messages)")
                #expect(messages.contains { $0.contains("U+0000") } && messages.contains { $0.contains("3000 bytes") }, "\(messages)")
                // Counted from the list itself: a Swift dictionary keyed by String would merge them again.
                let listed = try await client.call(.get, "/v1/sources/keys/records?limit=1000").json["items"]?.arrayValue ?? []
                #expect(listed.count == distinct.count, "round \(round): \(listed.compactMap { $0["key"]?.stringValue.map { Array($0.unicodeScalars) } })")
                // Each key fetched by its own bytes finds its own record.
                for (n, key) in distinct.enumerated() {
                    let path = "/v1/sources/keys/records/" + (key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
                    #expect(try await client.call(.get, path).json["data"]?["n"] == .number(Double(n)), "\(Array(key.unicodeScalars))")
                }
            }
        }
    }

    /// A record whose key holds U+0000 and is too large to store was stamped as seen under
    /// the key cut at the NUL (`x`), so a full sync kept `x` although the upstream no longer
    /// had it. Now such a key names no record error key, and `x` is deleted.
    @Test(arguments: StoreBackend.allCases)
    func aKeyWithANulStampsNoOtherKey(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            let second = Mutex(false)
            fixture.script { _ in
                let big = String(repeating: "z", count: 2000)
                return second.withLock { $0 } ? .json(#"{"rows":[{"id":"x\u0000y","pad":"\#(big)"},{"id":"w"}]}"#) : .json(#"{"rows":[{"id":"x"},{"id":"w"}]}"#)
            }
            _ = try await client.createHTTPSource("nul", #"{"url": "\#(fixture.baseURL)/s/n", "records_path": "/rows", "primary_key": "id", "max_record_bytes": 1024}"#)
            #expect(try await client.runSync("nul")["status"] == .string("completed"))
            second.withLock { $0 = true }
            let sync = try await client.runSync("nul")
            #expect(sync["status"] == .string("completed"), "\(sync["error"] ?? .null)")
            #expect(sync["progress"]?["records_deleted"] == .number(1))
            #expect(try await client.allRecords("nul").keys.sorted() == ["w"])
        }
    }
}
