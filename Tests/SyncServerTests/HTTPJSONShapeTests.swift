import Foundation
import Synchronization
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// The request and response shapes of real APIs, each against a scripted upstream that
/// answers the way the API's documentation says: stop conditions, cursors from the last
/// record, POST bodies, time cursors, JSON Lines, projections and parent→child streams.
@Suite("http-json: the shapes real APIs have")
struct HTTPJSONShapeTests {
    /// `from...to`, empty when `from > to` (an upstream asked past its end).
    static func span(_ from: Int, _ to: Int) -> [Int] { from <= to ? Array(from...to) : [] }

    /// `n` records `{"id": i, "v": "…"}` with ids from `from`.
    static func rows(_ ids: some Sequence<Int>, extra: (Int) -> String = { _ in "" }) -> String {
        "[" + ids.map { #"{"id":\#($0),"v":"r\#($0)"\#(extra($0))}"# }.joined(separator: ",") + "]"
    }

    /// Stripe's list contract: `has_more` and `starting_after` = the last record's id. Without
    /// the stop condition the sync would ask once more (an empty page): three requests, not four.
    @Test(arguments: StoreBackend.allCases)
    func hasMoreFalseEndsACursorFromTheLastRecord(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            fixture.script { request in
                let after = request.query["starting_after"].flatMap { Int($0) } ?? 0
                let ids = Self.span(after + 1, min(after + 10, 25))
                return .json(#"{"object":"list","has_more":\#((ids.last ?? 25) < 25),"data":\#(Self.rows(ids))}"#)
            }
            _ = try await client.createHTTPSource("stripe", #"""
                {"url": "\#(fixture.baseURL)/s/v1/customers?limit=10", "records_path": "/data", "primary_key": "id",
                 "pagination": {"type": "cursor", "param": "starting_after", "from_last_record": "/id",
                                "stop_when": {"path": "/has_more", "equals": false}}}
                """#)
            let sync = try await client.runSync("stripe")
            #expect(sync["status"] == .string("completed"), "\(sync)")
            #expect(sync["result"]?["records_created"] == .number(25))
            #expect(fixture.requests.map(\.query) == ["limit=10", "limit=10&starting_after=10", "limit=10&starting_after=20"])
        }
    }

    /// A count at `total_path` ends an offset read once reached (an upstream that answers past
    /// the end with its last page again would otherwise fail as a loop); `max_pages` ends any
    /// read after that many pages; `stop_on_empty_page` ends a cursor read whose upstream
    /// names a next cursor on an empty page.
    @Test func totalCountMaxPagesAndAnEmptyPageEndTheRead() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { request in
                switch request.path {
                case "/total":
                    let offset = min(Int(request.query["offset"] ?? "0") ?? 0, 20)
                    return .json(#"{"total":25,"results":\#(Self.rows(Self.span(offset + 1, min(offset + 10, 25))))}"#)
                case "/endless":
                    let page = Int(request.query["page"] ?? "1") ?? 1
                    return .json(#"{"items":\#(Self.rows((page * 10 - 9)...(page * 10)))}"#)
                default:
                    let n = Int(request.query["c"] ?? "0") ?? 0
                    return .json(#"{"items":\#(n < 3 ? Self.rows([n + 1]) : "[]"),"next":"\#(n + 1)"}"#)
                }
            }
            _ = try await client.createHTTPSource("total", #"""
                {"url": "\#(fixture.baseURL)/s/total", "records_path": "/results", "primary_key": "id",
                 "pagination": {"type": "offset", "limit_param": "limit", "limit": 10, "total_path": "/total"}}
                """#)
            _ = try await client.createHTTPSource("capped", #"""
                {"url": "\#(fixture.baseURL)/s/endless", "records_path": "/items", "primary_key": "id",
                 "pagination": {"type": "page", "max_pages": 4}}
                """#)
            _ = try await client.createHTTPSource("empty", #"""
                {"url": "\#(fixture.baseURL)/s/empty", "records_path": "/items", "primary_key": "id",
                 "pagination": {"type": "cursor", "param": "c", "path": "/next", "stop_on_empty_page": true}}
                """#)
            for (name, path, records, requests) in [("total", "/s/total", 25, 3), ("capped", "/s/endless", 40, 4), ("empty", "/s/empty", 3, 4)] {
                let sync = try await client.runSync(name)
                #expect(sync["status"] == .string("completed"), "\(name): \(sync)")
                #expect(sync["result"]?["records_created"]?.intValue == records, "\(name)")
                #expect(fixture.requests(path: path).count == requests, "\(name)")
            }
        }
    }

    /// A page with the same first and last record keys as one before it (its middle changed)
    /// is the upstream serving a page again: the attempt fails as `invalid_response`.
    @Test func aPageWithTheSameFirstAndLastKeysIsALoop() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { request in
                let c = request.query["c"] ?? "0"
                return .json(#"{"items":\#(Self.rows([1, 2, 3], extra: { $0 == 2 ? #","c":"\#(c)""# : "" })),"next":"\#(c)x"}"#)
            }
            _ = try await client.createHTTPSource("loop", #"""
                {"url": "\#(fixture.baseURL)/s/loop", "records_path": "/items", "primary_key": "id",
                 "pagination": {"type": "cursor", "param": "c", "path": "/next"}}
                """#, extra: #", "retry": {"max_attempts": 1}"#)
            let sync = try await client.runSync("loop")
            #expect(sync["status"] == .string("failed"))
            #expect(sync["error"]?["code"] == .string("invalid_response"), "\(sync)")
            #expect(sync["error"]?["message"]?.stringValue?.contains("first and last") == true, "\(sync)")
        }
    }

    /// HubSpot's `paging.next.link` (a nested path) and Salesforce's `nextRecordsUrl` (a path
    /// relative to the origin) with `done`.
    @Test func nestedAndRelativeNextLinksWithADoneFlag() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { request in
                let at = Int(request.path.split(separator: "-").last ?? "0") ?? 0
                let ids = Self.span(at + 1, min(at + 10, 25))
                let done = (ids.last ?? 25) == 25
                return .json(#"{"totalSize":25,"done":\#(done),"nextRecordsUrl":"/s/query/01g-\#(ids.last ?? 25)","records":\#(Self.rows(ids))}"#)
            }
            _ = try await client.createHTTPSource("sf", #"""
                {"url": "\#(fixture.baseURL)/s/query?q=SELECT+Id+FROM+Account", "records_path": "/records", "primary_key": "id",
                 "pagination": {"type": "next_url", "path": "/nextRecordsUrl", "stop_when": {"path": "/done", "equals": true}}}
                """#)
            let sync = try await client.runSync("sf")
            #expect(sync["status"] == .string("completed"), "\(sync)")
            #expect(sync["result"]?["records_created"] == .number(25))
            #expect(fixture.requests.map(\.path) == ["/s/query", "/s/query/01g-10", "/s/query/01g-20"])
        }
    }

    /// A time cursor: the saved cursor is the latest instant (not the greatest bytes: 10:00
    /// at -04:00 is after 12:00Z), sent as epoch seconds less the lookback, with the sync's
    /// start time in `end_param`; the first sync sends `start`.
    @Test(arguments: StoreBackend.allCases)
    func timeCursorsAreComparedAsInstantsAndSentInTheUpstreamsFormat(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            fixture.script { _ in
                .json(#"{"rows":[{"id":1,"u":"2026-01-01T12:00:00Z"},{"id":2,"u":"2026-01-01T10:00:00-04:00"},{"id":3,"u":"2026-01-01T13:00:00.000+0000"}]}"#)
            }
            _ = try await client.createHTTPSource("times", #"""
                {"url": "\#(fixture.baseURL)/s/rows", "records_path": "/rows", "primary_key": "id",
                 "incremental": {"cursor_field": "u", "param": "start_time", "cursor_format": "epoch_seconds",
                                 "lookback_seconds": 60, "end_param": "end_time", "start": 0}}
                """#)
            let before = Int(Date().timeIntervalSince1970)
            _ = try await client.runSync("times")
            let state = try await client.call(.get, "/v1/sources/times").json["state"]
            #expect(state?["cursor"] == .string("2026-01-01T10:00:00-04:00"), "\(state ?? .null)")
            _ = try await client.runSync("times")
            let queries = fixture.requests.map { request in
                Dictionary(request.query.split(separator: "&").map { ($0.split(separator: "=").first.map(String.init) ?? "", $0.split(separator: "=").last.map(String.init) ?? "") },
                           uniquingKeysWith: { a, _ in a })
            }
            #expect(queries.first?["start_time"] == "0")
            // 2026-01-01T14:00:00Z is 1767276000; less 60 s of lookback.
            #expect(queries.last?["start_time"] == "1767275940", "\(queries)")
            let end = Int(queries.last?["end_time"] ?? "") ?? 0
            #expect(end >= before && end <= Int(Date().timeIntervalSince1970) + 1, "\(queries)")
        }
    }

    /// A value that is not a time, under `cursor_format`, is that record's error; the rest sync.
    @Test func aCursorThatIsNotATimeIsARecordError() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in .json(#"{"rows":[{"id":1,"u":"yesterday"},{"id":2,"u":1767276000},{"id":3,"u":"2026-02-30T00:00:00Z"}]}"#) }
            _ = try await client.createHTTPSource("bad", #"""
                {"url": "\#(fixture.baseURL)/s/rows", "records_path": "/rows", "primary_key": "id",
                 "incremental": {"cursor_field": "u", "param": "since", "cursor_format": "rfc3339"}}
                """#)
            let sync = try await client.runSync("bad")
            #expect(sync["result"]?["records_failed"] == .number(2), "\(sync)")
            #expect(try await client.call(.get, "/v1/sources/bad").json["state"]?["cursor"] == .number(1_767_276_000))
        }
    }

    /// GraphQL: a POST of `query` and `variables`, `endCursor` into `{cursor}` (absent on the
    /// first page, so the member is left out), `hasNextPage` false ends.
    @Test(arguments: StoreBackend.allCases)
    func graphQLPagesThroughAPostBody(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            fixture.script { request in
                let after = request.json["variables"]?["after"]?.stringValue.flatMap { Int($0.dropFirst(2)) } ?? 0
                let first = request.json["variables"]?["first"]?.intValue ?? 0
                let ids = Self.span(after + 1, min(after + first, 12))
                return .json(#"{"data":{"items":{"nodes":\#(Self.rows(ids)),"pageInfo":{"hasNextPage":\#((ids.last ?? 12) < 12),"endCursor":"c:\#(ids.last ?? 12)"}}}}"#)
            }
            _ = try await client.createHTTPSource("gql", #"""
                {"url": "\#(fixture.baseURL)/s/graphql", "method": "POST", "records_path": "/data/items/nodes", "primary_key": "id",
                 "body": {"query": "query($first: Int!, $after: String) { items(first: $first, after: $after) { nodes { id v } pageInfo { hasNextPage endCursor } } }",
                          "variables": {"first": 5, "after": "{cursor}"}},
                 "pagination": {"type": "cursor", "path": "/data/items/pageInfo/endCursor",
                                "stop_when": {"path": "/data/items/pageInfo/hasNextPage", "equals": false}}}
                """#)
            let sync = try await client.runSync("gql")
            #expect(sync["status"] == .string("completed"), "\(sync)")
            #expect(sync["result"]?["records_created"] == .number(12))
            let bodies = fixture.requests.map(\.body).map { try? parseJSON($0) }
            #expect(fixture.requests.allSatisfy { $0.method == "POST" && $0.headers["content-type"] == "application/json" })
            #expect(bodies.count == 3)
            #expect(bodies[0]?["variables"] == .object(["first": .number(5)]), "\(bodies)")
            #expect(bodies[1]?["variables"]?["after"] == .string("c:5"))
            #expect(bodies[2]?["query"]?.stringValue?.contains("{ items(") == true)
        }
    }

    /// A search endpoint: the incremental cursor as epoch milliseconds in the body's filter,
    /// `start` when there is none yet, the page cursor beside it.
    @Test func aSearchPostCarriesTheCursorInItsBody() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { request in
                let after = Int(request.json["after"]?.stringValue ?? "0") ?? 0
                let ids = Self.span(after + 1, min(after + 4, 6))
                let next = (ids.last ?? 6) < 6 ? #","paging":{"next":{"after":"\#(ids.last!)"}}"# : ""
                return .json(#"{"total":6,"results":\#(Self.rows(ids, extra: { #","updatedAt":"2026-03-0\#($0)T00:00:00.000Z""# }))\#(next)}"#)
            }
            _ = try await client.createHTTPSource("search", #"""
                {"url": "\#(fixture.baseURL)/s/crm/v3/objects/contacts/search", "method": "POST", "records_path": "/results", "primary_key": "id",
                 "body": {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "{since}"}]}],
                          "limit": 4, "after": "{cursor}"},
                 "pagination": {"type": "cursor", "path": "/paging/next/after"},
                 "incremental": {"cursor_field": "updatedAt", "cursor_format": "epoch_millis", "start": 0}}
                """#)
            _ = try await client.runSync("search")
            _ = try await client.runSync("search")
            let bodies = fixture.requests.compactMap { try? parseJSON($0.body) }
            func filterValue(_ body: JSONValue) -> JSONValue? { body["filterGroups"]?.arrayValue?.first?["filters"]?.arrayValue?.first?["value"] }
            #expect(bodies.count == 4)
            #expect(filterValue(bodies[0]) == .number(0))
            #expect(bodies[0]["after"] == nil && bodies[1]["after"] == .string("4"))
            // 2026-03-06T00:00:00Z in milliseconds.
            #expect(filterValue(bodies[2]) == .number(1_772_755_200_000), "\(bodies[2])")
        }
    }

    /// `records_path` ending in `/*` reads an object's values; `fields` keeps only those
    /// fields (the rest never stored), the key read before the projection.
    @Test func objectValuesAsRecordsAndOnlyTheNamedFields() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in .json(#"{"data":{"a":{"id":"a","keep":1,"secret":"x"},"b":{"id":"b","keep":2,"secret":"y","also":[1]}}}"#) }
            _ = try await client.createHTTPSource("proj", #"""
                {"url": "\#(fixture.baseURL)/s/map", "records_path": "/data/*", "primary_key": "id", "fields": ["keep", "also"]}
                """#)
            let sync = try await client.runSync("proj")
            #expect(sync["result"]?["records_created"] == .number(2), "\(sync)")
            let records = try await client.allRecords("proj")
            #expect(records["a"]?["data"] == .object(["keep": .number(1)]))
            #expect(records["b"]?["data"] == .object(["keep": .number(2), "also": .array([.number(1)])]))
        }
    }

    /// JSON Lines: one record per line, blank lines skipped, paged by offset until an empty page;
    /// a line that is not JSON fails the page, naming the line.
    @Test func jsonLinesPages() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { request in
                if request.path == "/broken" { return FixtureUpstream.Scripted(headers: [("Content-Type", "application/x-ndjson")], body: "{\"id\":1}\n{\"id\":\n") }
                let offset = Int(request.query["offset"] ?? "0") ?? 0
                let lines = offset >= 30 ? [] : ((offset + 1)...(offset + 10)).map { #"{"id":\#($0),"v":"r\#($0)"}"# }
                return FixtureUpstream.Scripted(headers: [("Content-Type", "application/x-ndjson")], body: lines.joined(separator: "\r\n\n") + (lines.isEmpty ? "" : "\n"))
            }
            _ = try await client.createHTTPSource("lines", #"""
                {"url": "\#(fixture.baseURL)/s/export", "format": "jsonl", "primary_key": "id",
                 "pagination": {"type": "offset", "limit_param": "limit", "limit": 10}}
                """#)
            _ = try await client.createHTTPSource("broken", #"""
                {"url": "\#(fixture.baseURL)/s/broken", "format": "jsonl", "primary_key": "id"}
                """#, extra: #", "retry": {"max_attempts": 1}"#)
            let sync = try await client.runSync("lines")
            #expect(sync["result"]?["records_created"] == .number(30), "\(sync)")
            #expect(try await client.allRecords("lines")["17"]?["data"]?["v"] == .string("r17"))
            let broken = try await client.runSync("broken")
            #expect(broken["error"]?["code"] == .string("invalid_response"))
            #expect(broken["error"]?["message"]?.stringValue?.contains("line 2") == true, "\(broken)")
        }
    }

    /// A JSON Lines answer larger than a page is read in pieces of whole lines, each committed
    /// with the number of lines it reached; an answer that breaks off is asked for again by the
    /// next attempt, which skips the committed lines: every record once, exact counts.
    @Test(arguments: StoreBackend.allCases)
    func aLargeJSONLinesAnswerIsReadInPiecesAndResumedByLine(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            let count = 60_000
            let body = (1...count).map { #"{"id":\#($0),"pad":"\#(String(repeating: "x", count: 200))"}"# }.joined(separator: "\n") + "\n"
            let cut = Mutex(true)
            fixture.script { _ in
                var answer = FixtureUpstream.Scripted(headers: [("Content-Type", "application/x-ndjson")], body: body)
                // The first answer breaks off past its first pieces, once.
                if cut.withLock({ let first = $0; $0 = false; return first }) { answer.cutAfter = 10_500_000 }
                return answer
            }
            _ = try await client.createHTTPSource("big", #"""
                {"url": "\#(fixture.baseURL)/s/export.jsonl", "format": "jsonl", "primary_key": "id", "max_request_retries": 0}
                """#, extra: #", "retry": {"max_attempts": 3, "initial_delay_seconds": 0.1}"#)
            let sync = try await client.runSync("big", timeout: .seconds(120))
            #expect(sync["status"] == .string("completed"), "\(sync)")
            #expect(sync["attempts"]?.arrayValue?.count == 2, "\(sync)")
            // The cut is the upstream's fault, retryable, as one before the body would be.
            #expect(sync["attempts"]?.arrayValue?.first?["error"]?["code"] == .string("upstream_unavailable"), "\(sync)")
            #expect(sync["result"]?["records_created"]?.intValue == count, "\(sync)")
            #expect(sync["result"]?["records_read"]?.intValue == count, "\(sync)")
            #expect((sync["result"]?["pages"]?.intValue ?? 0) >= 4, "\(sync)")
            #expect(fixture.requests.count == 2)
            #expect(fixture.requests.allSatisfy { $0.headers["accept-encoding"] == "identity" })
            #expect(try await client.allRecords("big").count == count)
        }
    }

    @Test func configProblemsAreNamedFieldByField() async throws {
        try await withHTTPNode(items: 0) { client, _, _ in
            let cases: [(String, String)] = [
                (#""url": "http://127.0.0.1:9/x", "pagination": {"type": "cursor", "path": "/n"}"#, "config.pagination.param"),
                (#""url": "http://127.0.0.1:9/x", "pagination": {"type": "cursor", "param": "c", "path": "/n", "from_last_record": "/id"}"#, "config.pagination.from_last_record"),
                (#""url": "http://127.0.0.1:9/x", "pagination": {"type": "page", "max_pages": 0}"#, "config.pagination.max_pages"),
                (#""url": "http://127.0.0.1:9/x", "pagination": {"type": "page", "stop_when": {"path": "/x", "equals": [1]}}"#, "config.pagination.stop_when.equals"),
                (#""url": "http://127.0.0.1:9/x", "body": {"a": 1}"#, "config.body"),
                (#""url": "http://127.0.0.1:9/x", "incremental": {"cursor_field": "u", "param": "s", "lookback_seconds": 60}"#, "config.incremental.cursor_format"),
                (#""url": "http://127.0.0.1:9/x", "incremental": {"cursor_field": "u", "param": "s", "cursor_format": "epoch_seconds", "start": "soon"}"#, "config.incremental.start"),
                (#""url": "http://127.0.0.1:9/x", "query": {"q": "WHERE t > {since}"}, "incremental": {"cursor_field": "u"}"#, "config.incremental.start"),
                (#""url": "http://127.0.0.1:9/x/{cursor}", "pagination": {"type": "cursor", "path": "/n"}"#, "config.url"),
                (#""url": "http://{host}:9/x""#, "config.url"),
                (#""url": "http://127.0.0.1:9/x/%7Bsince%7D", "incremental": {"cursor_field": "u", "param": "s"}"#, "config.url"),
                (#""url": "http://127.0.0.1:9/x", "query": {"q": "after {cursor}"}, "pagination": {"type": "cursor", "path": "/n"}"#, "config.query.q"),
                (#""url": "http://127.0.0.1:9/x", "format": "jsonl", "pagination": {"type": "next_url", "path": "/n"}"#, "config.pagination.type"),
                (#""url": "http://127.0.0.1:9/x", "partitions": {"from_source": "p", "values": {"account_id": "/id"}}"#, "config.partitions.values.account_id"),
                (#""url": "http://127.0.0.1:9/a/{cursor}", "partitions": {"from_source": "p", "values": {"cursor": "/id"}}"#, "config.partitions.values.cursor"),
                (#""url": "http://127.0.0.1:9/x", "method": "PUT""#, "config.method"),
            ]
            for (config, field) in cases {
                let r = try await client.call(.post, "/v1/sources", #"{"name": "bad", "kind": "http-json", "config": {\#(config), "primary_key": "id"}}"#)
                #expect(r.status == .unprocessableContent, "\(config)")
                let fields = r.json["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? []
                #expect(fields.contains(field), "\(config): \(fields)")
            }
        }
    }

    /// The parents and children a partition test's upstream serves, changed by the test.
    final class Accounts: Sendable {
        struct State {
            var accounts = Array(1...50)
            /// Contact ids repeat across accounts: 1...3 each.
            var stamps: [String: Int] = [:]
            var failOnce: String?
            var contactRequests: [String: Int] = [:]
        }
        let state = Mutex(State())

        func answer(_ request: FixtureUpstream.ScriptRequest) -> FixtureUpstream.Scripted {
            state.withLock { s in
                if request.path == "/accounts" {
                    let page = Int(request.query["page"] ?? "1") ?? 1
                    let ids = s.accounts.dropFirst((page - 1) * 20).prefix(20)
                    return .json(#"{"accounts":[\#(ids.map { #"{"id":"acc_\#($0)","name":"A\#($0)"}"# }.joined(separator: ","))]}"#)
                }
                // /accounts/acc_N/contacts
                let parts = request.path.split(separator: "/")
                let account = String(parts[1])
                s.contactRequests[account, default: 0] += 1
                if s.failOnce == account + "/" + (request.query["page"] ?? "1") {
                    s.failOnce = nil
                    return FixtureUpstream.Scripted(status: 503, body: "{}")
                }
                let page = Int(request.query["page"] ?? "1") ?? 1
                let since = Int(request.query["updated_since"] ?? "0") ?? 0
                let all = (1...3).filter { (s.stamps["\(account)/\($0)"] ?? 1) >= since }
                let ids = all.dropFirst((page - 1) * 2).prefix(2)
                let rows = ids.map { id in
                    let stamp = s.stamps["\(account)/\(id)"] ?? 1
                    return #"{"id":\#(id),"account_id":"\#(account)","updated":\#(stamp)}"#
                }
                return .json(#"{"contacts":[\#(rows.joined(separator: ","))]}"#)
            }
        }
    }

    /// Parent→child: the contacts of every account, one read per parent record from the
    /// record store; keys scoped by the partition (contact ids repeat across accounts), the
    /// incremental cursor kept per partition, a new parent picked up, a deleted parent's
    /// children deleted by a full child sync, and a failed attempt resumed inside the
    /// partition it was in, without reading the partitions before it again.
    @Test(arguments: StoreBackend.allCases)
    func aChildStreamRunsOncePerParentRecordAndResumesInsideItsPartition(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            let upstream = Accounts()
            fixture.script { upstream.answer($0) }
            _ = try await client.createHTTPSource("accounts", #"""
                {"url": "\#(fixture.baseURL)/s/accounts", "records_path": "/accounts", "primary_key": "id",
                 "pagination": {"type": "page", "size_param": "per_page", "size": 20}}
                """#)
            _ = try await client.createHTTPSource("contacts", #"""
                {"url": "\#(fixture.baseURL)/s/accounts/{account_id}/contacts", "records_path": "/contacts", "primary_key": "id",
                 "pagination": {"type": "page"}, "max_request_retries": 0,
                 "incremental": {"cursor_field": "updated", "param": "updated_since"},
                 "partitions": {"from_source": "accounts", "values": {"account_id": "/id"}}}
                """#, extra: #", "retry": {"max_attempts": 3, "initial_delay_seconds": 0.1}"#)
            #expect(try await client.runSync("accounts")["result"]?["records_created"] == .number(50))

            upstream.state.withLock { $0.failOnce = "acc_30/2" }
            let first = try await client.runSync("contacts")
            #expect(first["status"] == .string("completed"), "\(first)")
            #expect(first["attempts"]?.arrayValue?.count == 2, "\(first)")
            #expect(first["result"]?["records_created"] == .number(150), "\(first)")
            let counts = upstream.state.withLock { $0.contactRequests }
            // Three pages each (2 + 1 contacts, then an empty page), acc_30's second page asked
            // twice; acc_29 (before acc_30 in key order) not read again by the second attempt.
            #expect(counts["acc_30"] == 4 && counts["acc_29"] == 3 && counts["acc_1"] == 3, "\(counts)")
            #expect(counts.values.reduce(0, +) == 151, "\(counts)")
            let records = try await client.allRecords("contacts")
            #expect(records.count == 150)
            #expect(Set(records.values.compactMap { $0["data"]?["account_id"]?.stringValue }).count == 50)
            let key = try #require(records.first(where: { $0.value["data"]?["account_id"] == .string("acc_7") && $0.value["data"]?["id"] == .number(2) })?.key)
            #expect(key == #"["acc_7",2]"#, "\(key)")
            let state = try await client.call(.get, "/v1/sources/contacts").json["state"]?.objectValue ?? [:]
            #expect(state["cursor@acc_7"] == .number(1) && state.count == 50, "\(state)")

            // A change in one partition, a new parent: the next sync reads only those.
            upstream.state.withLock { s in
                s.stamps["acc_7/2"] = 5
                s.accounts.append(51)
                s.contactRequests = [:]
            }
            _ = try await client.runSync("accounts")
            let second = try await client.runSync("contacts")
            #expect(second["result"]?["records_created"] == .number(3), "\(second)")
            #expect(second["result"]?["records_updated"] == .number(1), "\(second)")
            let state2 = try await client.call(.get, "/v1/sources/contacts").json["state"]
            #expect(state2?["cursor@acc_7"] == .number(5) && state2?["cursor@acc_51"] == .number(1))

            // A parent gone: a full child sync deletes its children, and only those.
            upstream.state.withLock { $0.accounts.removeAll { $0 == 9 } }
            _ = try await client.runSync("accounts", body: #"{"mode": "full"}"#)
            let full = try await client.runSync("contacts", body: #"{"mode": "full"}"#)
            #expect(full["result"]?["records_deleted"] == .number(3), "\(full)")
            #expect(try await client.allRecords("contacts").count == 150)

            // Another cursor field: every partition's saved cursor goes with it.
            let patched = try await client.call(.patch, "/v1/sources/contacts", #"""
                {"config": {"url": "\#(fixture.baseURL)/s/accounts/{account_id}/contacts", "records_path": "/contacts", "primary_key": "id",
                 "pagination": {"type": "page"}, "incremental": {"cursor_field": "changed", "param": "updated_since"},
                 "partitions": {"from_source": "accounts", "values": {"account_id": "/id"}}}}
                """#)
            #expect(patched.status == .ok, "\(String(buffer: patched.body))")
            #expect(patched.json["state"]?.objectValue?.isEmpty == true, "\(patched.json["state"] ?? .null)")
        }
    }
}
