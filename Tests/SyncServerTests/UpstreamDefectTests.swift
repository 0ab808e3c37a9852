import Foundation
import HummingbirdTesting
import Synchronization
import Testing
import SyncConnectors
import SyncCore
import SyncStore
import TestSupport

/// The defects found by driving Tributary from outside (records skipped or deleted, syncs
/// that never end), each reproduced against a scripted upstream on both stores.
@Suite("Defects found from outside: data loss and endless syncs")
struct UpstreamDefectTests {
    /// Contacts in id order whose `updated_at` is not monotonic (as datasette's are), paged
    /// by `page`/`size`, filtered by `since` (updated_at >= since).
    final class Contacts: Sendable {
        let rows: [(id: Int, updatedAt: String)]
        let failPage = Mutex<Int?>(nil)

        init(count: Int) {
            // A permutation of stamps: id i gets stamp (i * 37) % count, so page 1 holds large ones.
            rows = (1...count).map { ($0, String(format: "2026-11-%02dT00:00:00Z", 1 + ($0 * 37) % count % 28) + String(format: "-%03d", ($0 * 37) % count)) }
        }

        func answer(_ r: FixtureUpstream.ScriptRequest) -> FixtureUpstream.Scripted {
            let page = Int(r.query["page"] ?? "1") ?? 1
            let size = Int(r.query["size"] ?? "10") ?? 10
            if failPage.withLock({ $0 == page }) { return FixtureUpstream.Scripted(status: 401, body: "{}") }
            let since = r.query["since"]
            let matching = rows.filter { since == nil || $0.updatedAt >= since! }
            let slice = matching.dropFirst((page - 1) * size).prefix(size)
            return .json(#"{"rows":["# + slice.map { #"{"id":\#($0.id),"updated_at":"\#($0.updatedAt)"}"# }.joined(separator: ",") + "]}")
        }
    }

    static let contactsConfig = #""records_path": "/rows", "primary_key": "id", "pagination": {"type": "page", "param": "page", "size_param": "size", "size": 10}"#

    /// Item 1: a sync that fails part-way must not save the largest cursor it saw; the next
    /// incremental sync then reads everything it did not.
    @Test(arguments: StoreBackend.allCases)
    func aFailedIncrementalSyncOnAnUnsortedUpstreamSkipsNothing(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            let contacts = Contacts(count: 60)
            fixture.script(contacts.answer)
            _ = try await client.createHTTPSource("contacts", #"""
                {"url": "\#(fixture.baseURL)/s/contacts", \#(Self.contactsConfig),
                 "incremental": {"cursor_field": "updated_at", "param": "since"}}
                """#, extra: #", "retry": {"max_attempts": 1}"#)
            contacts.failPage.withLock { $0 = 3 }
            let first = try await client.runSync("contacts")
            #expect(first["status"] == .string("failed"))
            #expect(first["progress"]?["pages"] == .number(2))
            // Nothing is saved from an unfinished sync.
            #expect(try await client.call(.get, "/v1/sources/contacts").json["state"]?["cursor"] == nil)
            contacts.failPage.withLock { $0 = nil }
            let second = try await client.runSync("contacts")
            #expect(second["status"] == .string("completed"), "\(second["error"] ?? .null)")
            #expect(try await client.allRecords("contacts").count == 60)
            let saved = try await client.call(.get, "/v1/sources/contacts").json["state"]?["cursor"]
            #expect(saved == .string(contacts.rows.map(\.updatedAt).max()!))
        }
    }

    /// `incremental.sorted: true` declares the upstream sorted: the cursor then moves with each page.
    @Test func aSortedUpstreamMovesTheCursorWithEveryPage() async throws {
        try await withHTTPNode(items: 30) { client, fixture, _ in
            _ = try await client.createHTTPSource("sorted", #"""
                {"url": "\#(fixture.baseURL)/next?size=10", "records_path": "/rows", "primary_key": "id",
                 "pagination": {"type": "next_url", "path": "/next_url"},
                 "incremental": {"cursor_field": "updated_at", "param": "updated_since", "sorted": true}}
                """#, extra: #", "retry": {"max_attempts": 1}"#)
            fixture.inject(.status(401), path: "/next", after: 2)
            let sync = try await client.runSync("sorted")
            #expect(sync["status"] == .string("failed"))
            let cursor = try await client.call(.get, "/v1/sources/sorted").json["state"]?["cursor"]
            #expect(cursor == .string(fixture.items[19].updatedAt))
        }
    }

    /// Item 2: cursors past 2^53 keep every digit, compare exactly and go back unchanged.
    @Test(arguments: StoreBackend.allCases)
    func largeIntegerCursorsAreKeptExactly(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            let stamps = Mutex(["1732600000123456800", "1732600000123456900", "9007199254740993"])
            fixture.script { r in
                let since = r.query["since"].flatMap { UInt64($0) }
                let rows = stamps.withLock { $0 }.enumerated().filter { since == nil || UInt64($0.element)! >= since! }
                return .json(#"{"rows":["# + rows.map { #"{"id":\#($0.offset),"ts":\#($0.element)}"# }.joined(separator: ",") + "]}")
            }
            _ = try await client.createHTTPSource("big", #"""
                {"url": "\#(fixture.baseURL)/s/big", "records_path": "/rows", "primary_key": "id",
                 "incremental": {"cursor_field": "ts", "param": "since"}}
                """#)
            #expect(try await client.runSync("big")["result"]?["records_created"] == .number(3))
            // Too long for a float: kept as its exact digits.
            #expect(try await client.call(.get, "/v1/sources/big").json["state"]?["cursor"] == .string("1732600000123456900"))
            stamps.withLock { $0.append("1732600000123456950") }
            let next = try await client.runSync("big")
            #expect(next["result"]?["records_created"] == .number(1))
            #expect(fixture.requests.last?.query == "since=1732600000123456900")
            #expect(try await client.call(.get, "/v1/sources/big").json["state"]?["cursor"] == .string("1732600000123456950"))
        }
    }

    @Test func aCursorThatAFloatCannotHoldIsSentAsItsDigits() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in .json(#"{"rows":[{"id":1,"ts":9007199254740993},{"id":2,"ts":17.25}]}"#) }
            _ = try await client.createHTTPSource("f", #"""
                {"url": "\#(fixture.baseURL)/s/f", "records_path": "/rows", "primary_key": "id", "incremental": {"cursor_field": "ts", "param": "since"}}
                """#)
            _ = try await client.runSync("f")
            _ = try await client.runSync("f")
            #expect(fixture.requests.map(\.query) == ["", "since=9007199254740993"])
        }
    }

    /// Item 18: a cursor that is a boolean, object or array is a record error, not ignored.
    @Test func aCursorOfTheWrongTypeIsARecordError() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in .json(#"{"rows":[{"id":1,"ts":true},{"id":2,"ts":{"a":1}},{"id":3,"ts":null},{"id":4,"ts":"b"}]}"#) }
            _ = try await client.createHTTPSource("t", #"""
                {"url": "\#(fixture.baseURL)/s/t", "records_path": "/rows", "primary_key": "id", "incremental": {"cursor_field": "ts", "param": "since"}}
                """#)
            let sync = try await client.runSync("t")
            #expect(sync["result"]?["records_created"] == .number(2))
            #expect(sync["result"]?["records_failed"] == .number(2))
            #expect(try await client.call(.get, "/v1/sources/t").json["state"]?["cursor"] == .string("b"))
        }
    }

    /// Item 5: one key rule. `1` and `"1"` are two records; `1`, `1.0` and `1e0` are one; an
    /// empty string is a key like any other (listed and fetchable); a repeated member takes
    /// the last value, as the stored bytes do. Item 14: a key repeated within a page counts once.
    @Test(arguments: StoreBackend.allCases)
    func oneKeyRuleEverywhere(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            fixture.script { _ in
                .json(#"{"rows":[{"id":1,"v":"a"},{"id":"1","v":"b"},{"id":1.0,"v":"c"},{"id":"","v":"e"},{"id":1e0,"v":"d"},{"id":7,"id":8}]}"#)
            }
            _ = try await client.createHTTPSource("k", #"{"url": "\#(fixture.baseURL)/s/k", "records_path": "/rows", "primary_key": "id"}"#)
            let sync = try await client.runSync("k")
            #expect(sync["result"]?["records_created"] == .number(4))
            #expect(sync["result"]?["records_updated"] == .number(0))
            let records = try await client.allRecords("k")
            #expect(records.keys.sorted() == ["\"\"", "\"1\"", "1", "8"])
            #expect(records["1"]?["data"]?["v"] == .string("d"))
            #expect(records["\"1\""]?["data"]?["v"] == .string("b"))
            for (path, v) in [("1", "d"), ("%221%22", "b"), ("%22%22", "e")] {
                let r = try await client.call(.get, "/v1/sources/k/records/\(path)")
                #expect(r.status == .ok, "\(path)")
                #expect(r.json["data"]?["v"] == .string(v), "\(path)")
            }
            // The same upstream again: nothing changed, so nothing is updated.
            let again = try await client.runSync("k")
            #expect(again["result"]?["records_updated"] == .number(0))
            #expect(again["result"]?["records_unchanged"] == .number(4))
        }
    }

    /// Item 14 across pages: a key read on two pages of one sync counts once; the later
    /// version is the one stored. (An unchanged upstream whose two versions differ reports one
    /// update per sync: the first version replaces the stored later one, then the later one
    /// comes back uncounted; docs/sources.md says so.)
    @Test(arguments: StoreBackend.allCases)
    func aKeyOnTwoPagesCountsOnce(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            fixture.script { r in
                r.query["c"] == nil
                    ? .json(#"{"rows":[{"id":"d","v":1},{"id":"s","v":0}],"next":"2"}"#)
                    : .json(#"{"rows":[{"id":"d","v":2},{"id":"s","v":0},{"id":"e"}],"next":""}"#)
            }
            _ = try await client.createHTTPSource("two-b", #"""
                {"url": "\#(fixture.baseURL)/s/two", "records_path": "/rows", "primary_key": "id",
                 "pagination": {"type": "cursor", "param": "c", "path": "/next"}}
                """#)
            let sync1 = try await client.runSync("two-b", body: #"{"mode": "full"}"#)
            #expect(sync1["result"]?["records_created"] == .number(3))
            #expect(sync1["result"]?["records_updated"] == .number(0))
            #expect(sync1["result"]?["records_unchanged"] == .number(0))
            #expect(try await client.call(.get, "/v1/sources/two-b/records/d").json["data"]?["v"] == .number(2))
            let sync2 = try await client.runSync("two-b", body: #"{"mode": "full"}"#)
            #expect(sync2["result"]?["records_created"] == .number(0))
            #expect(sync2["result"]?["records_updated"] == .number(1))
            #expect(sync2["result"]?["records_unchanged"] == .number(2))
            #expect(sync2["result"]?["records_deleted"] == .number(0))
            #expect(try await client.call(.get, "/v1/sources/two-b/records/d").json["data"]?["v"] == .number(2))
        }
    }

    /// Item 16: keys are percent-decoded in the path.
    @Test func recordKeysArePercentDecoded() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in .json(#"{"rows":[{"id":"a b"},{"id":"é"},{"id":"a/b"},{"id":"q?x"}]}"#) }
            _ = try await client.createHTTPSource("p", #"{"url": "\#(fixture.baseURL)/s/p", "records_path": "/rows", "primary_key": "id"}"#)
            _ = try await client.runSync("p")
            for path in ["a%20b", "%C3%A9", "a%2Fb", "q%3Fx"] {
                #expect(try await client.call(.get, "/v1/sources/p/records/\(path)").status == .ok, "\(path)")
            }
            #expect(try await client.call(.get, "/v1/sources/p/records/nope").status == .notFound)
        }
    }

    /// Item 3: a full sync never deletes a record whose key it read, even as a record error.
    @Test(arguments: StoreBackend.allCases)
    func aFullSyncKeepsARecordThatOnlyFailedValidation(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            let big = Mutex(false)
            fixture.script { _ in
                let two = big.withLock { $0 } ? #"{"id":2,"pad":"\#(String(repeating: "x", count: 500))"}"# : #"{"id":2}"#
                return .json(#"{"rows":[{"id":1},\#(two),{"id":3}]}"#)
            }
            _ = try await client.createHTTPSource("v", #"{"url": "\#(fixture.baseURL)/s/v", "records_path": "/rows", "primary_key": "id", "max_record_bytes": 100}"#)
            #expect(try await client.runSync("v", body: #"{"mode": "full"}"#)["result"]?["records_created"] == .number(3))
            big.withLock { $0 = true }
            let sync = try await client.runSync("v", body: #"{"mode": "full"}"#)
            #expect(sync["result"]?["records_failed"] == .number(1))
            #expect(sync["result"]?["records_deleted"] == .number(0))
            let two = try await client.call(.get, "/v1/sources/v/records/2").json
            #expect(two["deleted_at"] == .null)
            #expect(two["data"] == .object(["id": .number(2)]))
        }
    }

    /// Item 4: a resumed full sync whose pagination changed reads again from the first page
    /// with the new config and deletes nothing that is still upstream.
    @Test(arguments: StoreBackend.allCases)
    func aResumedFullSyncAfterAPaginationChangeDeletesNothingLive(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, _ in
            fixture.script { r in
                let page = Int(r.query["page"] ?? "1") ?? 1, size = Int(r.query["size"] ?? "10") ?? 10
                let ids = (1...200).dropFirst((page - 1) * size).prefix(size)
                return FixtureUpstream.Scripted(body: #"{"rows":["# + ids.map { #"{"id":\#($0)}"# }.joined(separator: ",") + "]}", delay: .milliseconds(100))
            }
            _ = try await client.createHTTPSource("pg", #"""
                {"url": "\#(fixture.baseURL)/s/pg", "records_path": "/rows", "primary_key": "id",
                 "pagination": {"type": "page", "param": "page", "size_param": "size", "size": 10}}
                """#)
            let id = try #require(try await client.call(.post, "/v1/sources/pg/syncs", #"{"mode": "full"}"#).json["id"]?.stringValue)
            _ = try await eventually(timeout: .seconds(30), every: .milliseconds(5)) { () -> Bool? in
                (try await client.call(.get, "/v1/syncs/\(id)").json["progress"]?["pages"]?.intValue ?? 0) >= 5 ? true : nil
            }
            #expect(try await client.call(.post, "/v1/syncs/\(id)/cancel").status == .accepted)
            #expect(try await client.waitTerminal(id)["status"] == .string("cancelled"))
            let patched = try await client.call(.patch, "/v1/sources/pg", #"{"config": {"pagination": {"type": "page", "param": "page", "size_param": "size", "size": 50}}}"#)
            #expect(patched.status == .ok)
            fixture.clearLog()
            #expect(try await client.call(.post, "/v1/syncs/\(id)/retry").status == .accepted)
            let done = try await client.waitTerminal(id)
            #expect(done["status"] == .string("completed"), "\(done["error"] ?? .null)")
            #expect(done["result"]?["records_deleted"] == .number(0))
            #expect(fixture.requests.first?.query == "page=1&size=50")
            #expect(try await client.allRecords("pg").count == 200)
        }
    }

    /// Item 6: pagination that goes round in a circle fails with `invalid_response` after a
    /// few requests; a page that names itself as the next is the last page, records kept.
    @Test(arguments: [
        ("next_url p → q → p", #""pagination": {"type": "next_url", "path": "/next"}"#, "next"),
        ("link p → q → p", #""pagination": {"type": "link_header"}"#, "link"),
        ("cursor a → b → a", #""pagination": {"type": "cursor", "param": "c", "path": "/next"}"#, "cursor"),
    ])
    func aPaginationCycleFailsInsteadOfRunningForever(_ name: String, _ pagination: String, _ style: String) async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            let base = fixture.baseURL
            fixture.script { r in
                let onQ = r.path == "/q" || r.query["c"] == "b"
                let id = onQ ? 2 : 1
                switch style {
                case "next": return .json(#"{"rows":[{"id":\#(id)}],"next":"\#(base)/s/\#(onQ ? "p" : "q")"}"#)
                case "link": return FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", "<\(base)/s/\(onQ ? "p" : "q")>; rel=\"next\"")], body: #"{"rows":[{"id":\#(id)}]}"#)
                default: return .json(#"{"rows":[{"id":\#(id)}],"next":"\#(onQ ? "a" : "b")"}"#)
                }
            }
            _ = try await client.createHTTPSource("loop", #"{"url": "\#(base)/s/p", "records_path": "/rows", "primary_key": "id", \#(pagination)}"#)
            let sync = try await client.runSync("loop", timeout: .seconds(20))
            #expect(sync["status"] == .string("failed"), "\(name)")
            #expect(sync["error"]?["code"] == .string("invalid_response"), "\(name)")
            #expect(fixture.requests.count <= 4, "\(name): \(fixture.requests.count) requests")
        }
    }

    @Test(arguments: [
        ("next_url to itself", #""pagination": {"type": "next_url", "path": "/next"}"#, #"{"rows":[{"id":1},{"id":2}],"next":"BASE/s/p"}"#, 1, 2),
        ("cursor repeated", #""pagination": {"type": "cursor", "param": "c", "path": "/next"}"#, #"{"rows":[{"id":1},{"id":2}],"next":"same"}"#, 2, 3),
        ("cursor repeated on an empty page", #""pagination": {"type": "cursor", "param": "c", "path": "/next"}"#, #"{"rows":[],"next":"same"}"#, 2, 1),
    ])
    func aPageThatNamesItselfAsNextIsTheLast(_ name: String, _ pagination: String, _ body: String, _ requests: Int, _ records: Int) async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            let base = fixture.baseURL
            fixture.script { r in
                // Cursor styles: the first page points at "same", and the page read with c=same at itself.
                if pagination.contains("cursor") && r.query["c"] == nil { return .json(#"{"rows":[{"id":0}],"next":"same"}"#) }
                return .json(body.replacingOccurrences(of: "BASE", with: base))
            }
            _ = try await client.createHTTPSource("self", #"{"url": "\#(base)/s/p", "records_path": "/rows", "primary_key": "id", \#(pagination)}"#)
            let sync = try await client.runSync("self", timeout: .seconds(20))
            #expect(sync["status"] == .string("completed"), "\(name): \(sync["error"] ?? .null)")
            #expect(fixture.requests.count == requests, "\(name)")
            #expect(try await client.allRecords("self").count == records, "\(name)")
        }
    }

    /// Item 7: `timeout_seconds` bounds the whole request, body included.
    @Test func aSlowBodyTimesOut() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            // The body would take 90 s (45 bytes, one every 2 s); timeout_seconds is 1.
            fixture.script { _ in FixtureUpstream.Scripted(body: #"{"rows":[{"id":1},{"id":2},{"id":3},{"id":4}]}"#, trickle: .seconds(2)) }
            _ = try await client.createHTTPSource("slow", #"""
                {"url": "\#(fixture.baseURL)/s/slow", "records_path": "/rows", "primary_key": "id", "timeout_seconds": 1, "max_request_retries": 0}
                """#, extra: #", "retry": {"max_attempts": 1}"#)
            let sync = try await client.runSync("slow", timeout: .seconds(60))
            #expect(sync["status"] == .string("failed"))
            let attempt = try #require(sync["attempts"]?.arrayValue?.first)
            #expect(attempt["error"]?["code"] == .string("upstream_timeout"))
            // The attempt's own duration, by the server's clock: cut near the 1 s timeout, far
            // from the body's 90 s (a loaded machine may add seconds, never a minute).
            let ran = try #require(attempt["finished_at"]?.stringValue.flatMap(Timestamp.parse))
                .timeIntervalSince(try #require(attempt["started_at"]?.stringValue.flatMap(Timestamp.parse)))
            #expect(ran < 30, "the attempt ran \(ran) s")
        }
    }

    /// Item 17: a `Link` target with a comma is fetched as it was written.
    @Test func aLinkHeaderURLWithACommaIsFollowedWhole() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            let base = fixture.baseURL
            fixture.script { r in
                if r.path == "/q" {
                    return .json(#"[{"id":2}]"#)
                }
                return FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", "<\(base)/s/q?fields=a,b&x=1>; rel=\"next\"")], body: #"[{"id":1}]"#)
            }
            _ = try await client.createHTTPSource("lc", #"{"url": "\#(base)/s/p", "primary_key": "id", "pagination": {"type": "link_header"}}"#)
            #expect(try await client.runSync("lc")["status"] == .string("completed"))
            #expect(fixture.requests.last?.query == "fields=a,b&x=1")
        }
    }

    /// Item 18: a gzip body that inflates past 200 times its size is a permanent
    /// `invalid_response`, requested once, not a retryable `upstream_unavailable`.
    @Test func aGzipBombIsAnInvalidResponse() async throws {
        let dir = try TemporaryDirectory("gzip")
        defer { dir.remove() }
        let plain = dir.file("plain.json")
        try (#"{"rows":[],"pad":""# + String(repeating: "0", count: 4_000_000) + #""}"#).write(toFile: plain, atomically: true, encoding: .utf8)
        #expect(try await runCommand("/bin/gzip", ["-k", "-9", plain]).status == 0)
        let bomb = try [UInt8](Data(contentsOf: URL(fileURLWithPath: plain + ".gz")))
        #expect(bomb.count * 200 < 4_000_000)
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in
                var answer = FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], body: "")
                answer.bytes = bomb
                return answer
            }
            _ = try await client.createHTTPSource("gz", #"""
                {"url": "\#(fixture.baseURL)/s/gz", "records_path": "/rows", "primary_key": "id", "max_request_retries": 3, "request_backoff_seconds": 0.01}
                """#)
            let sync = try await client.runSync("gz")
            #expect(sync["status"] == .string("failed"))
            #expect(sync["error"]?["code"] == .string("invalid_response"), "\(sync["error"] ?? .null)")
            #expect(fixture.requests.count == 1)
        }
    }

    /// Item 18: a UTF-8 byte order mark before the JSON is ignored (RFC 8259 §8.1).
    @Test func aByteOrderMarkIsIgnored() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in .json("\u{FEFF}" + #"{"rows":[{"id":1}]}"#) }
            _ = try await client.createHTTPSource("bom", #"{"url": "\#(fixture.baseURL)/s/bom", "records_path": "/rows", "primary_key": "id"}"#)
            let sync = try await client.runSync("bom")
            #expect(sync["status"] == .string("completed"), "\(sync["error"] ?? .null)")
            #expect(sync["result"]?["records_created"] == .number(1))
        }
    }
}
