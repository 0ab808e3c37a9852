import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// Behaviour docs/api.md and docs/queue.md promise that no other test tried.
@Suite("Documented behaviour")
struct DocumentedBehaviourTests {
    /// `DELETE /v1/sources/{id}` deletes its records and history: a source created after it
    /// (SQLite hands the next one the freed internal number) starts with no records and no
    /// syncs, under a new name and under the deleted one's.
    @Test(arguments: StoreBackend.allCases)
    func aDeletedSourceTakesItsRecordsAndHistoryWithIt(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 1).test { client in
            let old = try #require(try await client.createSource("doomed", records: 12, pageSize: 5)["id"]?.stringValue)
            let sync = try await client.runSync("doomed")
            #expect(sync["status"] == .string("completed"))
            let syncID = try #require(sync["id"]?.stringValue)
            #expect(try await client.call(.get, "/v1/sources/doomed/records?limit=100").json["items"]?.arrayValue?.count == 12)
            #expect(try await client.call(.delete, "/v1/sources/doomed").status == .noContent)
            #expect(try await client.call(.get, "/v1/syncs/\(syncID)").status == .notFound)
            #expect(try await client.call(.get, "/v1/sources/\(old)").status == .notFound)
            for name in ["fresh", "doomed"] {
                let id = try #require(try await client.createSource(name, records: 3)["id"]?.stringValue)
                #expect(id != old)
                #expect(try await client.call(.get, "/v1/sources/\(name)/records?limit=100").json["items"]?.arrayValue?.isEmpty == true, "\(name)")
                #expect(try await client.call(.get, "/v1/syncs?source_id=\(id)").json["items"]?.arrayValue?.isEmpty == true, "\(name)")
                let shown = try await client.call(.get, "/v1/sources/\(name)").json
                #expect(shown["last_sync"] == .null && shown["health"] == .string("never_synced"), "\(name): \(shown)")
            }
            #expect(try await client.call(.get, "/v1/syncs").json["items"]?.arrayValue?.isEmpty == true)
            // source_id takes a name as well as an id; an unknown one matches nothing.
            let named = try await client.runSync("fresh")
            let byName = try await client.call(.get, "/v1/syncs?source_id=fresh").json["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
            #expect(byName == [named["id"]?.stringValue ?? "?"])
            #expect(try await client.call(.get, "/v1/syncs?source_id=nobody").json["items"]?.arrayValue?.isEmpty == true)
        }
    }

    /// `X-RateLimit-Remaining: 0` (or `RateLimit-Remaining: 0`) with a reset closes the key in
    /// the database, where every node reads it: the source shows `rate_limited_until` at the
    /// reset, and the next page waits for it.
    @Test(arguments: [("X-RateLimit-Remaining", "X-RateLimit-Reset"), ("RateLimit-Remaining", "RateLimit-Reset")])
    func aSpentRateLimitHeaderClosesTheKey(_ names: (remaining: String, reset: String)) async throws {
        try await withHTTPNode(items: 0) { client, fixture, store in
            fixture.script { request in
                let page = Int(request.query["page"] ?? "1") ?? 1
                return page == 1
                    ? FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), (names.remaining, "0"), (names.reset, "2")], body: #"{"rows": [{"id": 1}]}"#)
                    : .json(#"{"rows": []}"#)
            }
            _ = try await client.createHTTPSource("spent", #"""
                {"url": "\#(fixture.baseURL)/s/x", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "page", "param": "page"}}
                """#)
            let asked = Date()
            let id = try #require(try await client.call(.post, "/v1/sources/spent/syncs").json["id"]?.stringValue)
            let until = try await eventually(timeout: .seconds(10), every: .milliseconds(20)) { () -> Date? in
                try await client.call(.get, "/v1/sources/spent").json["rate_limited_until"]?.stringValue.flatMap(Timestamp.parse)
            }
            // The key closes 2 s after the answer, which came between the trigger and now.
            let seen = Date()
            #expect(until.timeIntervalSince(asked) > 1.9 && until.timeIntervalSince(seen) < 2.1, "closed until \(until), asked at \(asked), seen at \(seen)")
            let source = try #require(try await store.source(idOrName: "spent"))
            #expect(try await store.closedUntil(key: source.rateKey, now: Date()) != nil, "the closure is in the database")
            let done = try await client.waitTerminal(id, timeout: .seconds(20))
            #expect(done["status"] == .string("completed"))
            let times = fixture.requests.map(\.at)
            #expect(times.count == 2)
            if times.count == 2 { #expect(times[1] - times[0] >= .milliseconds(900), "the second page came \(times[1] - times[0]) after the first") }
        }
    }

    /// A key on two pages of one sync is read once (`[1,2]`, `[2,3]`: read 3), on both stores,
    /// through the one-statement and the transactional page paths (a record error on a page):
    /// read = created + updated + unchanged + failed.
    @Test(arguments: StoreBackend.allCases)
    func aKeyOnTwoPagesOfOneSyncIsReadOnce(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            fixture.script { request in
                switch request.query["page"] ?? "1" {
                case "1": .json(#"{"rows": [{"id": 1}, {"id": 2}]}"#)
                case "2": .json(#"{"rows": [{"id": 2}, {"id": 3}, {"id": 3}]}"#)
                case "3": .json(#"{"rows": [{"id": 1, "v": 2}, {"no": "id"}]}"#)
                default: .json(#"{"rows": []}"#)
                }
            }
            _ = try await client.createHTTPSource("twice", #"""
                {"url": "\#(fixture.baseURL)/s/x", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "page", "param": "page"}}
                """#)
            for round in 1...2 {
                let result = try await client.runSync("twice")["result"]
                #expect(result?["records_read"] == .number(4), "round \(round): \(result ?? .null)")
                let parts = ["records_created", "records_updated", "records_unchanged", "records_failed"].compactMap { result?[$0]?.intValue }
                #expect(parts.count == 4 && parts.reduce(0, +) == 4, "round \(round): \(result ?? .null)")
            }
        }
    }

    /// A records page is bounded by bytes as well as by `limit`: 30 records of 600 KB with
    /// `limit=1000` come a few at a time (each page just past 4 MiB at most), every record
    /// exactly once and in key order through `next_cursor`; small records still fill `limit`.
    @Test(arguments: StoreBackend.allCases)
    func aRecordsPageIsBoundedByBytes(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            let pad = String(repeating: "p", count: 600_000)
            fixture.script { _ in .json(#"{"rows": ["# + (0..<30).map { #"{"id": \#($0), "pad": "\#(pad)"}"# }.joined(separator: ",") + "]}") }
            _ = try await client.createHTTPSource("big", #"""
                {"url": "\#(fixture.baseURL)/s/big", "records_path": "/rows", "primary_key": "id", "max_page_bytes": 33554432}
                """#)
            #expect(try await client.runSync("big")["result"]?["records_created"] == .number(30))
            var seen: [String] = []
            var path = "/v1/sources/big/records?limit=1000"
            var pages = 0
            while pages < 40 {
                let response = try await client.call(.get, path)
                pages += 1
                #expect(response.body.readableBytes <= (4 << 20) + 700_000, "page \(pages): \(response.body.readableBytes) bytes")
                let items = response.json["items"]?.arrayValue ?? []
                #expect(!items.isEmpty && items.count <= 8, "page \(pages): \(items.count) records")
                seen += items.compactMap { $0["key"]?.stringValue }
                guard let cursor = response.json["next_cursor"]?.stringValue else { break }
                path = "/v1/sources/big/records?limit=1000&after=\(cursor)"
            }
            #expect(seen == (0..<30).map(String.init).sorted(), "\(seen)")
            #expect(pages >= 4, "\(pages) pages")
            // Small records: the count bound, as before.
            _ = try await client.createSource("small", records: 120)
            _ = try await client.runSync("small")
            let small = try await client.call(.get, "/v1/sources/small/records?limit=100").json
            #expect(small["items"]?.arrayValue?.count == 100 && small["next_cursor"] != .null)
        }
    }

    /// A PATCHed `rate_limit` reaches the sync already running: at 50 requests a second the
    /// upstream sees the new 2 a second within two seconds of the PATCH (the running sync went
    /// on at the old rate until it ended).
    @Test func aPatchedRateLimitReachesTheRunningSync() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { request in
                let page = Int(request.query["page"] ?? "1") ?? 1
                return page > 400 ? .json(#"{"rows": []}"#) : .json(#"{"rows": [{"id": \#(page)}]}"#)
            }
            _ = try await client.createHTTPSource("paced", #"""
                {"url": "\#(fixture.baseURL)/s/x", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "page", "param": "page"}}
                """#, extra: #", "rate_limit": {"requests_per_second": 50, "burst": 1}"#)
            let id = try #require(try await client.call(.post, "/v1/sources/paced/syncs").json["id"]?.stringValue)
            _ = try await eventually { fixture.requests.count >= 30 ? true : nil }
            #expect(try await client.call(.patch, "/v1/sources/paced", #"{"rate_limit": {"requests_per_second": 2, "burst": 1}}"#).status == .ok)
            try await Task.sleep(for: .seconds(2))
            let before = fixture.requests.count
            try await Task.sleep(for: .seconds(3))
            let during = fixture.requests.count - before
            #expect(during <= 2 * 3 + 2, "\(during) requests in 3 s after the PATCH to 2 a second")
            #expect(during >= 3, "\(during) requests: the sync should go on at the new rate")
            #expect(try await client.call(.post, "/v1/syncs/\(id)/cancel").status == .accepted)
        }
    }

    /// Every dashboard page and asset carries the security headers docs/dashboard.md lists,
    /// with exactly those values.
    @Test func everyDashboardPageCarriesTheDocumentedSecurityHeaders() async throws {
        try await TestNode(workers: 1).test { client in
            let id = try #require(try await client.createSource("h", records: 2)["id"]?.stringValue)
            let sync = try #require(try await client.runSync("h")["id"]?.stringValue)
            let csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
            for path in ["/", "/sources", "/sources/\(id)", "/syncs", "/syncs/\(sync)", "/nodes", "/sources?q=x", "/syncs/nope"] {
                let page = try await client.call(.get, path)
                #expect(page.headers[.contentSecurityPolicy] == csp, "\(path): \(page.headers[.contentSecurityPolicy] ?? "none")")
                #expect(page.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff", "\(path)")
                #expect(page.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer", "\(path)")
                #expect(page.headers[.cacheControl] == "no-store", "\(path)")
            }
        }
    }

    /// A draining node is listed in `/v1/health` with `draining: true`, and its workers are not
    /// live workers (a stale node's are not either).
    @Test(arguments: StoreBackend.allCases)
    func aDrainingNodesWorkersAreNotLive(_ backend: StoreBackend) async throws {
        let node = try await TestNode(backend: backend)
        try await node.test { client in
            let now = Date()
            try await node.store.registerNode(NodeInfo(id: "busy", role: "all", workers: 4, startedAt: now, heartbeatAt: now))
            try await node.store.registerNode(NodeInfo(id: "leaving", role: "worker", workers: 3, startedAt: now, heartbeatAt: now))
            try await node.store.registerNode(NodeInfo(id: "gone", role: "worker", workers: 5, startedAt: now.addingTimeInterval(-600), heartbeatAt: now.addingTimeInterval(-600)))
            #expect(try await client.call(.post, "/v1/nodes/leaving/drain").status == .ok)
            let health = try await client.call(.get, "/v1/health").json
            let workers = try #require(health["checks"]?.arrayValue?.first { $0["name"] == .string("workers") })
            #expect(workers["live_workers"] == .number(4), "\(workers)")
            let leaving = workers["nodes"]?.arrayValue?.first { $0["id"] == .string("leaving") }
            #expect(leaving?["draining"] == .bool(true), "\(workers)")
        }
    }
}
