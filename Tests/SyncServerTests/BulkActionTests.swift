import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// `POST /v1/syncs/cancel` and `POST /v1/syncs/retry`: many syncs, each under its own rules.
@Suite("Bulk cancel and retry")
struct BulkActionTests {
    @Test(arguments: StoreBackend.allCases)
    func bulkCancelStopsEverythingThenBulkRetryQueuesItAgain(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 2).test { client in
            for i in 0..<30 {
                let r = try await client.call(.post, "/v1/sources", #"{"name": "b\#(i)", "kind": "synthetic", "config": {"records": 100, "page_size": 10, "delay_ms_per_page": 60000}}"#)
                #expect(r.status == .created)
                #expect(try await client.call(.post, "/v1/sources/b\(i)/syncs").status == .accepted)
            }
            _ = try await eventually { try await client.call(.get, "/v1/syncs?status=running").json["items"]?.arrayValue?.count == 2 ? true : nil }
            let cancelled = try await client.call(.post, "/v1/syncs/cancel", "{}")
            #expect(cancelled.status == .ok)
            #expect(cancelled.json["matched"] == .number(30))
            #expect(cancelled.json["affected"] == .number(30))
            // The running two stop at their workers' next check; nothing is left active.
            _ = try await eventually(timeout: .seconds(20)) { () -> Bool? in
                let active = try await client.call(.get, "/v1/syncs?status=queued,running,retrying").json["items"]?.arrayValue ?? []
                return active.isEmpty ? true : nil
            }
            #expect(try await client.call(.get, "/v1/syncs?status=cancelled&limit=100").json["items"]?.arrayValue?.count == 30)
            // Again: nothing active matches, nothing changes.
            let again = try await client.call(.post, "/v1/syncs/cancel", "{}").json
            #expect(again["matched"] == .number(0) && again["affected"] == .number(0))

            // Retry one source's, then the rest; each goes back to the queue once.
            let one = try await client.call(.post, "/v1/syncs/retry", #"{"source_id": "b7"}"#).json
            #expect(one["affected"] == .number(1))
            let rest = try await client.call(.post, "/v1/syncs/retry", #"{"status": ["cancelled"]}"#).json
            #expect(rest["matched"] == .number(29) && rest["affected"] == .number(29))
            let active = try await client.call(.get, "/v1/syncs?status=queued,running&limit=100").json["items"]?.arrayValue ?? []
            #expect(active.count == 30)
            #expect(try await client.call(.post, "/v1/syncs/cancel", #"{"status": ["queued", "running"]}"#).json["affected"] == .number(30))
        }
    }

    /// `since` and `until` filter on `queued_at`: of three syncs queued a second apart, a
    /// window around the middle one cancels that one only; and a sync a rule refuses (retry of
    /// a cancelled sync whose source has another active one) is matched, not affected, and
    /// left as it is.
    @Test(arguments: StoreBackend.allCases)
    func theWindowFiltersAndARefusedSyncIsMatchedNotAffected(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend).test { client in
            var ids: [String] = []
            var marks: [String] = []
            for name in ["w0", "w1", "w2"] {
                _ = try await client.createSource(name)
                marks.append(Timestamp.format(Date()))
                ids.append(try #require(try await client.call(.post, "/v1/sources/\(name)/syncs").json["id"]?.stringValue))
                try await Task.sleep(for: .milliseconds(1100))
            }
            let window = try await client.call(.post, "/v1/syncs/cancel", #"{"since": "\#(marks[1])", "until": "\#(marks[2])"}"#)
            #expect(window.status == .ok && window.json["matched"] == .number(1) && window.json["affected"] == .number(1), "\(String(buffer: window.body))")
            let statuses = try await ids.asyncMap { try await client.call(.get, "/v1/syncs/\($0)").json["status"]?.stringValue ?? "" }
            #expect(statuses == ["queued", "cancelled", "queued"])

            // w1's cancelled sync cannot go back while w1 has another active sync.
            let active = try #require(try await client.call(.post, "/v1/sources/w1/syncs").json["id"]?.stringValue)
            let refused = try await client.call(.post, "/v1/syncs/retry", #"{"source_id": "w1", "status": ["cancelled"]}"#).json
            #expect(refused["matched"] == .number(1) && refused["affected"] == .number(0), "\(refused)")
            #expect(try await client.call(.get, "/v1/syncs/\(ids[1])").json["status"] == .string("cancelled"))
            #expect(try await client.call(.get, "/v1/syncs/\(active)").json["status"] == .string("queued"))
        }
    }

    @Test func badFiltersAreRefused() async throws {
        try await TestNode().test { client in
            for (body, field) in [(#"{"status": "queued"}"#, "status"), (#"{"status": ["nope"]}"#, "status"), (#"{"status": []}"#, "status"),
                                  (#"{"since": "yesterday"}"#, "since"), (#"{"until": 5}"#, "until"), (#"{"limit": 5}"#, "limit"), (#"{"source_id": 7}"#, "source_id")] {
                for action in ["cancel", "retry"] {
                    let r = try await client.call(.post, "/v1/syncs/\(action)", body)
                    #expect(r.status == .unprocessableContent, "\(action) \(body)")
                    #expect(r.json["errors"]?.arrayValue?.first?["field"] == .string(field), "\(action) \(body)")
                }
            }
            #expect(try await client.call(.post, "/v1/syncs/cancel", #"{"source_id": "missing"}"#).status == .notFound)
            #expect(try await client.call(.post, "/v1/syncs/cancel", "[1]").status == .unprocessableContent)
        }
    }
}
