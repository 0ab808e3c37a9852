import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Testing
import SyncConnectors
import SyncCore
import SyncEngine
import SyncServer
import SyncStore
import TestSupport

/// A node with the http-json kind on `backend`, against a fixture upstream; both torn down after.
func withHTTPNode<T: Sendable>(
    items: Int = 50, egress: EgressPolicy = .default, backend: StoreBackend = .sqlite,
    _ body: @Sendable (any TestClientProtocol, FixtureUpstream, any SyncStore) async throws -> T
) async throws -> T {
    let fixture = FixtureUpstream(items: items)
    try await fixture.start()
    let prometheus = PrometheusCollectorRegistry()
    let metrics = TributaryMetrics(prometheus: prometheus)
    let upstream = UpstreamClient(egress: egress, metrics: metrics)
    let (store, cleanup) = try await backend.makeStore()
    defer { cleanup() }
    do {
        let kinds = SourceKindRegistry.standard(client: upstream)
        let pool = WorkerPool(store: store, kinds: kinds, configuration: EngineConfiguration(workers: 2, nodeID: "n"), metrics: metrics)
        let server = TributaryServer(env: APIEnvironment(store: store, kinds: kinds, workers: pool, prometheus: prometheus, metrics: metrics, egress: egress),
                                     configuration: ServerConfiguration())
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        let result = try await server.buildApplication(services: [pool], logger: logger).test(.router) { client in
            try await body(client, fixture, store)
        }
        try await upstream.shutdown()
        await fixture.stop()
        return result
    } catch {
        try? await upstream.shutdown()
        await fixture.stop()
        throw error
    }
}

extension TestClientProtocol {
    /// Creates an http-json source and returns its id.
    func createHTTPSource(_ name: String, _ config: String, extra: String = "") async throws -> String {
        let r = try await call(.post, "/v1/sources", #"{"name": "\#(name)", "kind": "http-json", "config": \#(config)\#(extra)}"#)
        guard r.status == .created, let id = r.json["id"]?.stringValue else {
            throw TimedOut(description: "create failed: \(String(buffer: r.body))")
        }
        return id
    }

    /// Triggers a sync and waits for a terminal status; returns the sync.
    func runSync(_ source: String, body: String? = nil, timeout: Duration = .seconds(60)) async throws -> JSONValue {
        let r = try await call(.post, "/v1/sources/\(source)/syncs", body)
        guard r.status == .accepted, let id = r.json["id"]?.stringValue else {
            throw TimedOut(description: "trigger failed: \(String(buffer: r.body))")
        }
        return try await waitTerminal(id, timeout: timeout)
    }

    func waitTerminal(_ id: String, timeout: Duration = .seconds(60)) async throws -> JSONValue {
        try await eventually(timeout: timeout, every: .milliseconds(10)) { () -> JSONValue? in
            let s = try await call(.get, "/v1/syncs/\(id)").json
            return ["completed", "failed", "cancelled"].contains(s["status"]?.stringValue ?? "") ? s : nil
        }
    }

    /// Every record of a source: key → data.
    func allRecords(_ source: String, includeDeleted: Bool = false) async throws -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        var after: String?
        repeat {
            let page = try await call(.get, "/v1/sources/\(source)/records?limit=1000&include_deleted=\(includeDeleted)" + (after.map { "&after=\($0)" } ?? ""))
            for item in page.json["items"]?.arrayValue ?? [] { out[item["key"]?.stringValue ?? ""] = item }
            after = page.json["next_cursor"]?.stringValue
        } while after != nil
        return out
    }
}

@Suite("http-json source against a fixture upstream")
struct HTTPJSONTests {
    static let styles: [(String, String, Int)] = [
        ("none", #""url": "BASE/none", "records_path": "/rows""#, 1),
        ("next_url relative", #""url": "BASE/next?size=7", "records_path": "/rows", "pagination": {"type": "next_url", "path": "/next_url"}"#, 8),
        ("next_url absolute", #""url": "BASE/next?size=7&absolute=1", "records_path": "/rows", "pagination": {"type": "next_url", "path": "/next_url"}"#, 8),
        ("link_header", #""url": "BASE/link?size=7", "pagination": {"type": "link_header"}"#, 8),
        ("cursor", #""url": "BASE/cursor?limit=7", "records_path": "/data", "pagination": {"type": "cursor", "param": "cursor", "path": "/meta/next_cursor"}"#, 8),
        ("page", #""url": "BASE/page", "records_path": "/items", "pagination": {"type": "page", "param": "page", "size_param": "per_page", "size": 7}"#, 9),
        ("offset", #""url": "BASE/offset", "records_path": "/results", "pagination": {"type": "offset", "param": "offset", "limit_param": "limit", "limit": 7}"#, 9),
    ]

    @Test(arguments: 0..<styles.count, StoreBackend.allCases)
    func everyPaginationStyleSyncsRecordForRecord(_ index: Int, _ backend: StoreBackend) async throws {
        let (name, config, pages) = Self.styles[index]
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            let body = "{" + config.replacingOccurrences(of: "BASE", with: fixture.baseURL) + #", "primary_key": "id"}"#
            _ = try await client.createHTTPSource("s", body)
            let sync = try await client.runSync("s")
            #expect(sync["status"] == .string("completed"), "\(name): \(sync["error"] ?? .null)")
            #expect(sync["result"]?["records_created"] == .number(50), "\(name)")
            #expect(sync["result"]?["records_read"] == .number(50), "\(name)")
            #expect(sync["result"]?["pages"]?.intValue == pages, "\(name)")
            #expect(fixture.requests.count == pages, "\(name)")
            let records = try await client.allRecords("s")
            #expect(records.count == 50)
            for item in fixture.items {
                #expect(records[String(item.id)]?["data"] == (try parseJSON(Array(item.json.utf8))), "\(name) item \(item.id)")
            }
        }
    }

    /// A cursor value holding U+0000 (or a lone surrogate escape) is that record's error, the
    /// same on both stores: on PostgreSQL it failed every commit of the page (the state's
    /// jsonb refuses it), losing the good records beside it, and every later sync.
    @Test(arguments: StoreBackend.allCases)
    func aCursorNoStoreCanHoldIsARecordError(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            fixture.script { _ in
                .json(#"{"rows":[{"id":1,"c":"2026-01-08"},{"id":2,"c":"2026-01-09\u0000"},{"id":3,"c":"2026-01-0\ud800"},{"id":4,"c":"2026-01-07"}]}"#)
            }
            _ = try await client.createHTTPSource("nulcursor", #"""
                {"url": "\#(fixture.baseURL)/s/rows", "records_path": "/rows", "primary_key": "id", "incremental": {"cursor_field": "c", "param": "since"}}
                """#)
            for _ in 0..<2 {
                let sync = try await client.runSync("nulcursor")
                #expect(sync["status"] == .string("completed"), "\(sync)")
                #expect(sync["result"]?["records_failed"] == .number(2), "\(sync)")
            }
            let source = try await client.call(.get, "/v1/sources/nulcursor").json
            #expect(source["state"]?["cursor"] == .string("2026-01-08"), "\(source)")
            #expect(try await client.call(.get, "/v1/sources/nulcursor/records").json["items"]?.arrayValue?.count == 2)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func incrementalSyncsReadOnlyWhatChangedAndCountExactly(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("inc", #"""
                {"url": "\#(fixture.baseURL)/next?size=10", "records_path": "/rows", "primary_key": "id",
                 "pagination": {"type": "next_url", "path": "/next_url"},
                 "incremental": {"cursor_field": "updated_at", "param": "updated_since"}}
                """#)
            let first = try await client.runSync("inc")
            #expect(first["mode"] == .string("incremental"))
            #expect(first["result"]?["records_created"] == .number(50))
            let maxStamp = fixture.items.map(\.updatedAt).max()!
            let source = try await client.call(.get, "/v1/sources/inc").json
            #expect(source["state"]?["cursor"] == .string(maxStamp))
            #expect(!(fixture.requests.first?.query.contains("updated_since") ?? true))

            fixture.insert(count: 5)
            fixture.update(ids: [3, 17, 29])
            fixture.clearLog()
            let second = try await client.runSync("inc")
            #expect(second["status"] == .string("completed"))
            // 5 new, 3 changed, and the boundary record (updated_at == saved cursor) again, unchanged.
            #expect(second["result"]?["records_created"] == .number(5))
            #expect(second["result"]?["records_updated"] == .number(3))
            #expect(second["result"]?["records_unchanged"] == .number(1))
            #expect(second["result"]?["records_read"] == .number(9))
            let firstQuery = try #require(fixture.requests.first?.query)
            #expect(firstQuery.contains("updated_since=\(FixtureUpstream.percentForTests(maxStamp))"), "\(firstQuery)")
            let records = try await client.allRecords("inc")
            #expect(records.count == 55)
            #expect(records["17"]?["data"]?["name"]?.stringValue?.hasPrefix("item-17-v") == true)
            let after = try await client.call(.get, "/v1/sources/inc").json
            #expect(after["state"]?["cursor"] == .string(fixture.items.map(\.updatedAt).max()!))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func fullModeMarksExactlyTheDeletedRecordsAndAnIncompleteSyncDeletesNothing(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("full", #"""
                {"url": "\#(fixture.baseURL)/next?size=10", "records_path": "/rows", "primary_key": "id",
                 "pagination": {"type": "next_url", "path": "/next_url"}}
                """#, extra: #", "retry": {"max_attempts": 1}"#)
            _ = try await client.runSync("full")
            fixture.delete(ids: [2, 20, 33, 50])
            let done = try await client.runSync("full")
            #expect(done["status"] == .string("completed"))
            #expect(done["result"]?["records_deleted"] == .number(4))
            #expect(done["result"]?["records_unchanged"] == .number(46))
            let live = try await client.allRecords("full")
            #expect(live.count == 46)
            let all = try await client.allRecords("full", includeDeleted: true)
            let deleted = all.filter { $0.value["deleted_at"] != .null }.keys.sorted()
            #expect(deleted == ["2", "20", "33", "50"])
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aFullSyncThatStopsHalfwayDeletesNothing(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("half", #"""
                {"url": "\#(fixture.baseURL)/page", "records_path": "/items", "primary_key": "id",
                 "pagination": {"type": "page", "param": "page", "size_param": "per_page", "size": 10}}
                """#, extra: #", "retry": {"max_attempts": 1}"#)
            _ = try await client.runSync("half")
            fixture.delete(ids: [1, 2, 3])
            fixture.clearLog()
            // Pages 1 and 2 succeed, page 3 answers 400.
            fixture.inject(.status(400), path: "/page", times: 1, after: 2)
            let sync = try await client.runSync("half")
            #expect(fixture.requests.count == 3)
            #expect(sync["progress"]?["pages"] == .number(2))
            #expect(sync["status"] == .string("failed"))
            #expect(sync["error"]?["code"] == .string("upstream_client_error"))
            #expect(sync["progress"]?["records_deleted"] == .number(0))
            #expect(try await client.allRecords("half").count == 50)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func upstreamAuthFailureIsRequestedOnceAndPermanent(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("auth", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id", "headers": {"Authorization": "Bearer sup3rs3cret"}}"#)
            fixture.inject(.status(401), path: "/none", times: 10)
            let sync = try await client.runSync("auth")
            #expect(sync["status"] == .string("failed"))
            #expect(sync["error"]?["code"] == .string("upstream_auth_failed"))
            #expect(sync["error"]?["retryable"] == .bool(false))
            #expect(sync["error"]?["http_status"] == .number(401))
            #expect(fixture.requests.count == 1)
            #expect(fixture.requests.first?.headers["authorization"] == "Bearer sup3rs3cret")
            let text = try await client.call(.get, "/v1/syncs/\(sync["id"]!.stringValue!)")
            #expect(!String(buffer: text.body).contains("sup3rs3cret"))
        }
    }

    /// A 429 with `Retry-After: 3` to one source closes the key it shares with another: no
    /// request of either reaches the upstream until 3 s later, and no attempt fails.
    @Test(arguments: StoreBackend.allCases)
    func aRetryAfterClosesTheSharedKeyForEverySource(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            let limit = #", "rate_limit": {"requests_per_second": 100, "burst": 10, "key": "crm"}"#
            _ = try await client.createHTTPSource("a", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id"}"#, extra: limit)
            _ = try await client.createHTTPSource("b", #"{"url": "\#(fixture.baseURL)/next?size=10", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"}}"#, extra: limit)
            fixture.inject(.status(429, retryAfter: "3"), path: "/none", times: 1)
            let a = try #require(try await client.call(.post, "/v1/sources/a/syncs").json["id"]?.stringValue)
            let refused = try await eventually { fixture.requests(path: "/none").first }
            let shown = try await eventually { try await client.call(.get, "/v1/sources/b").json["rate_limited_until"]?.stringValue.flatMap(Timestamp.parse) }
            #expect(shown.timeIntervalSinceNow > 1 && shown.timeIntervalSinceNow <= 3.1, "\(shown)")
            let b = try #require(try await client.call(.post, "/v1/sources/b/syncs").json["id"]?.stringValue)
            for id in [a, b] {
                let done = try await client.waitTerminal(id, timeout: .seconds(30))
                #expect(done["status"] == .string("completed"))
                // A closure longer than a second hands the sync back (a second attempt), but no attempt fails.
                let statuses = done["attempts"]?.arrayValue?.compactMap { $0["status"]?.stringValue } ?? []
                #expect(!statuses.contains("failed") && !statuses.contains("retrying"), "no attempt failed: \(statuses)")
            }
            let after = fixture.requests.filter { $0.at > refused.at }
            #expect(after.count >= 6, "a's second request and b's pages")
            #expect(after.allSatisfy { $0.at - refused.at >= .milliseconds(2950) }, "\(after.map { $0.at - refused.at })")
            #expect(try await client.call(.get, "/v1/sources/b").json["rate_limited_until"] == .null)
        }
    }

    /// A pause longer than a request may wait hands the sync back at its checkpoint (it does
    /// not hold a worker, and no attempt fails); it runs again when the key reopens.
    @Test(arguments: StoreBackend.allCases)
    func aLongPauseHandsTheSyncBack(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("h", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id", "timeout_seconds": 1}"#,
                                                  extra: #", "retry": {"max_attempts": 2, "max_delay_seconds": 8}"#)
            fixture.inject(.status(503, retryAfter: "600"), path: "/none", times: 1)
            let id = try #require(try await client.call(.post, "/v1/sources/h/syncs").json["id"]?.stringValue)
            let handedBack = try await eventually { () -> JSONValue? in
                let s = try await client.call(.get, "/v1/syncs/\(id)").json
                return s["status"] == .string("queued") && s["attempt"] == .number(1) ? s : nil
            }
            #expect(handedBack["attempts"]?.arrayValue?.first?["error"]?["message"]?.stringValue?.contains("handed back") == true)
            #expect(try await client.call(.get, "/v1/sources/h").json["rate_limited_until"] != .null)
            let done = try await client.waitTerminal(id, timeout: .seconds(30))
            #expect(done["status"] == .string("completed"))
            #expect(done["attempt"] == .number(2))
            let requests = fixture.requests
            #expect(requests.count == 2)
            if requests.count == 2 {
                // Believed up to max_delay_seconds (8 s), not 600.
                #expect(requests[1].at - requests[0].at >= .milliseconds(7900) && requests[1].at - requests[0].at < .seconds(20))
            }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func retryAfterIsHonouredBeforeTheNextRequest(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("rl", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id", "request_backoff_seconds": 0.01}"#)
            fixture.inject(.status(429, retryAfter: "2"), path: "/none", times: 1)
            let sync = try await client.runSync("rl")
            #expect(sync["status"] == .string("completed"))
            let requests = fixture.requests
            #expect(requests.count == 2)
            #expect(requests[1].at - requests[0].at >= .seconds(2))
        }
    }

    /// Each of these once trapped a node (Double → Int of infinity, Int64 overflow while
    /// formatting) or scheduled a retry in the year 33715. A `Retry-After` that reads as a
    /// delay or a date closes the source's key for at most `max_delay_seconds` (2 s here):
    /// `rate_limited_until` is read right after the 429 and bounded; one that does not read
    /// (`inf`, `nan`, `-1`) closes nothing. The node keeps answering and completes the sync.
    @Test(arguments: [("inf", false), ("99999999999999999999", true), ("1000000000000", true), ("nan", false), ("-1", false),
                      ("Fri, 31 Dec 9999 23:59:59 GMT", true)], StoreBackend.allCases)
    func aHostileRetryAfterWaitsAtMostMaxDelayAndTrapsNothing(_ header: (value: String, closes: Bool), _ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 5, backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("ra", #"""
                {"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id", "max_request_retries": 0}
                """#, extra: #", "retry": {"max_attempts": 3, "initial_delay_seconds": 0.5, "max_delay_seconds": 2}"#)
            fixture.inject(.status(429, retryAfter: header.value), path: "/none", times: 1)
            let asked = Date()
            let id = try #require(try await client.call(.post, "/v1/sources/ra/syncs").json["id"]?.stringValue)
            // The attempt that met the 429 ends (the pause counts as its one request retry).
            let ended = try await eventually(timeout: .seconds(20), every: .milliseconds(5)) { () -> JSONValue? in
                let s = try await client.call(.get, "/v1/syncs/\(id)").json
                return s["attempts"]?.arrayValue?.first?["finished_at"]?.stringValue != nil ? s : nil
            }
            let closedUntil = try await client.call(.get, "/v1/sources/ra").json["rate_limited_until"]
            if header.closes {
                if let until = closedUntil?.stringValue.flatMap(Timestamp.parse) {
                    #expect(until > asked && until.timeIntervalSinceNow <= 2.5, "\(header.value): closed until \(until)")
                } else {
                    // Read after the closure ran out (a machine loaded by the rest of the suite):
                    // only then may it be gone. The request log below shows that it held.
                    #expect(Date().timeIntervalSince(asked) >= 1.9, "\(header.value): not closed")
                }
            } else {
                #expect(closedUntil == .null, "\(header.value): \(closedUntil ?? .null)")
            }
            if let next = ended["next_retry_at"]?.stringValue.flatMap(Timestamp.parse) {
                #expect(next.timeIntervalSinceNow <= 2.5, "\(header.value): \(next)")
            }
            #expect(try await client.call(.get, "/v1/syncs").status == .ok)
            let done = try await client.waitTerminal(id, timeout: .seconds(20))
            #expect(done["status"] == .string("completed"), "\(header.value): \(done["error"] ?? .null)")
            // With max_request_retries 0 the 429 is not retried inside the attempt (a pause counts
            // as a retry): the attempt fails and is retried after at most max_delay_seconds.
            #expect(done["attempt"] == .number(2), "\(header.value)")
            let requests = fixture.requests
            #expect(requests.count == 2)
            if requests.count == 2 {
                #expect(requests[1].at - requests[0].at <= .seconds(6), "\(header.value)")
                // A closing header keeps the key shut for max_delay_seconds (2 s), past the
                // retry's own 0.5 s delay.
                if header.closes { #expect(requests[1].at - requests[0].at >= .milliseconds(1900), "\(header.value)") }
            }
        }
    }

    // A 5 s request timeout: 0.5 s, and later 2 s, timed out healthy requests when the whole
    // suite (three-node PostgreSQL clusters, both stores) loads the two cores.
    @Test(arguments: [
        ("503 twice then fine", FixtureUpstream.Fault.status(503), 2, "completed", nil as String?, 3),
        ("502 beyond the request retries", .status(502), 10, "retrying", "upstream_unavailable", 3),
        ("connection reset", .reset, 1, "completed", nil, 2),
        ("hanging response", .hang(seconds: 12), 10, "retrying", "upstream_timeout", 3),
        ("malformed JSON", .malformedJSON, 1, "failed", "invalid_response", 1),
        ("HTML instead of JSON", .htmlBody, 1, "failed", "invalid_response", 1),
        ("no array at records_path", .noRecordsArray, 1, "failed", "invalid_response", 1),
        ("a page over max_page_bytes", .hugePage(bytes: 200_000), 1, "failed", "invalid_response", 1),
        ("404", .status(404), 1, "failed", "upstream_client_error", 1),
        ("408 once", .status(408), 1, "completed", nil, 2),
        ("429 beyond the request retries", .status(429, retryAfter: "0"), 10, "retrying", "upstream_rate_limited", 3),
    ] as [(String, FixtureUpstream.Fault, Int, String, String?, Int)])
    func faultsEndInTheRightStatusWithTheRightNumberOfRequests(_ name: String, _ fault: FixtureUpstream.Fault, _ times: Int,
                                                              _ status: String, _ code: String?, _ requests: Int) async throws {
        try await withHTTPNode { client, fixture, _ in
            _ = try await client.createHTTPSource("f", #"""
                {"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id", "max_request_retries": 2,
                 "request_backoff_seconds": 0.01, "timeout_seconds": 5, "max_page_bytes": 100000}
                """#, extra: #", "retry": {"max_attempts": 2, "initial_delay_seconds": 60}"#)
            fixture.inject(fault, path: "/none", times: times)
            let id = try #require(try await client.call(.post, "/v1/sources/f/syncs").json["id"]?.stringValue)
            let sync = try await eventually(timeout: .seconds(90), every: .milliseconds(10)) { () -> JSONValue? in
                let s = try await client.call(.get, "/v1/syncs/\(id)").json
                return ["completed", "failed", "retrying"].contains(s["status"]?.stringValue ?? "") ? s : nil
            }
            #expect(sync["status"] == .string(status), "\(name): \(sync["error"] ?? .null)")
            #expect(sync["error"]?["code"]?.stringValue == code, "\(name)")
            #expect(fixture.requests.count == requests, "\(name)")
            if status == "completed" { #expect(sync["result"]?["records_created"] == .number(50)) }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func badRecordsBecomeRecordErrorsAndTheSyncGoesOn(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("rec", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": ["region", "id"], "max_record_bytes": 200}"#)
            let big = String(repeating: "b", count: 300)
            fixture.inject(.body(#"""
                {"rows": [{"region": "eu", "id": 1, "v": "ok"}, {"id": 2}, 7, {"region": "us", "id": 1}, {"region": "eu", "id": {"x": 1}},
                          {"region": "eu", "id": 3, "blob": "\#(big)"}, {"region": "e\"u", "id": 4}]}
                """#), path: "/none")
            let sync = try await client.runSync("rec")
            #expect(sync["status"] == .string("completed"))
            #expect(sync["result"]?["records_created"] == .number(3))
            #expect(sync["result"]?["records_failed"] == .number(4))
            #expect(sync["result"]?["records_read"] == .number(7))
            let keys = try await client.allRecords("rec").keys.sorted()
            // Composite keys are JSON arrays of the parts: numbers canonical, strings quoted (docs/api.md, "Record keys").
            #expect(keys == [#"["e\"u",4]"#, #"["eu",1]"#, #"["us",1]"#])
            let errors = try await client.call(.get, "/v1/syncs/\(sync["id"]!.stringValue!)/record-errors").json["items"]?.arrayValue ?? []
            #expect(errors.count == 4)
            #expect(errors.compactMap { $0["record_key"]?.stringValue } == [#"["eu",3]"#])
            #expect(errors.allSatisfy { $0["page"] == .number(1) && ($0["message"]?.stringValue?.isEmpty == false) })
        }
    }

    /// Record errors page like every list: all of them, once each, in order; a made-up cursor is a 422.
    @Test(arguments: StoreBackend.allCases)
    func recordErrorsArePaginated(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            fixture.script { _ in .json(#"{"rows":[1,2,3,4,5,6,7,{"id":8}]}"#) }
            _ = try await client.createHTTPSource("errs", #"{"url": "\#(fixture.baseURL)/s/e", "records_path": "/rows", "primary_key": "id"}"#)
            let sync = try await client.runSync("errs")
            #expect(sync["result"]?["records_failed"] == .number(7))
            let id = try #require(sync["id"]?.stringValue)
            var messages: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await client.call(.get, "/v1/syncs/\(id)/record-errors?limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""))
                #expect(page.status == .ok)
                let items = page.json["items"]?.arrayValue ?? []
                #expect(items.count <= 3)
                messages += items.compactMap { $0["message"]?.stringValue }
                cursor = page.json["next_cursor"]?.stringValue
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(messages.count == 7)
            #expect(messages.allSatisfy { $0.contains("not an object") })
            #expect(try await client.call(.get, "/v1/syncs/\(id)/record-errors?cursor=abc").status == .unprocessableContent)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func theEgressPolicyBlocksAtCreateAndAtRunTime(_ backend: StoreBackend) async throws {
        let policy = EgressPolicy(deny: [EgressPolicy.Rule("127.0.0.2/32")!, EgressPolicy.Rule("blocked.test")!])
        try await withHTTPNode(egress: policy, backend: backend) { client, fixture, store in
            for url in ["http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/", "http://metadata.google.internal/x",
                        "http://127.0.0.2:\(fixture.port)/none", "http://api.blocked.test/x"] {
                let r = try await client.call(.post, "/v1/sources", #"{"name": "x", "kind": "http-json", "config": {"url": "\#(url)", "primary_key": "id"}}"#)
                #expect(r.status == .forbidden, "\(url)")
                #expect(r.problemCode == "forbidden")
            }
            // A source that got in (written straight to the store) is stopped when it runs.
            var source = makeSource(name: "sneaky", kind: "http-json", config: ["url": .string("http://127.0.0.2:\(fixture.port)/none"), "primary_key": .string("id")])
            source.retry.maxAttempts = 3
            _ = try await store.createSource(source)
            let sync = try await client.runSync("sneaky")
            #expect(sync["status"] == .string("failed"))
            #expect(sync["error"]?["code"] == .string("egress_blocked"))
            #expect(sync["attempts"]?.arrayValue?.count == 1)
            #expect(fixture.requests.isEmpty)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aRefusedConnectionIsRetriedThenUpstreamUnavailable(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, _, _ in
            _ = try await client.createHTTPSource("closed", #"{"url": "http://127.0.0.1:1/x", "primary_key": "id", "max_request_retries": 2, "request_backoff_seconds": 0.01}"#,
                                                  extra: #", "retry": {"max_attempts": 1}"#)
            let start = ContinuousClock.now
            let sync = try await client.runSync("closed")
            #expect(sync["status"] == .string("failed"))
            #expect(sync["attempts"]?.arrayValue?.first?["error"]?["code"] == .string("upstream_unavailable"))
            #expect(ContinuousClock.now - start < .seconds(10))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aConfigThatBecameInvalidFailsAsConfigInvalid(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, _, store in
            _ = try await store.createSource(makeSource(name: "broken", kind: "http-json", config: ["url": .string("not a url")]))
            let sync = try await client.runSync("broken")
            #expect(sync["status"] == .string("failed"))
            #expect(sync["error"]?["code"] == .string("config_invalid"))
            #expect(sync["attempts"]?.arrayValue?.count == 1)
        }
    }

    @Test func configValidationNamesEveryBadField() async throws {
        try await withHTTPNode { client, _, _ in
            let r = try await client.call(.post, "/v1/sources", #"""
                {"name": "bad", "kind": "http-json", "config": {"url": "ftp://x", "records_path": "rows", "pagination": {"type": "pages"},
                 "incremental": {"cursor_field": ""}, "timeout_seconds": 0, "headers": {"X": 1.5, "Bad Name": "v"}, "extra": true}}
                """#)
            #expect(r.status == .unprocessableContent)
            let fields = Set(r.json["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? [])
            #expect(fields == ["config.url", "config.records_path", "config.pagination.type", "config.incremental.cursor_field",
                               "config.incremental.param", "config.timeout_seconds", "config.headers.Bad Name", "config.extra",
                               "config.primary_key"], "\(fields.sorted())")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aSourceRateLimitSpacesRequests(_ backend: StoreBackend) async throws {
        try await withHTTPNode(backend: backend) { client, fixture, _ in
            _ = try await client.createHTTPSource("slow", #"{"url": "\#(fixture.baseURL)/next?size=10", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"}}"#,
                                                  extra: #", "rate_limit": {"requests_per_second": 10, "burst": 1}"#)
            let sync = try await client.runSync("slow")
            #expect(sync["status"] == .string("completed"))
            let times = fixture.requests.map(\.at)
            #expect(times.count == 5)
            #expect(times.last! - times.first! >= .milliseconds(350))
        }
    }
}

extension FixtureUpstream {
    static func percentForTests(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }
}
