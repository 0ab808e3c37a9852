import Foundation
import HummingbirdTesting
import Synchronization
import Testing
import SyncCore
import SyncStore
import TestSupport

/// Syncs that never ended or hammered an upstream: a rate limit that never granted, pages
/// that repeat for ever, a 429 answered with a burst, a closed key holding the node's workers.
@Suite("Syncs that end, at the upstream's pace")
struct EndlessSyncTests {
    /// Every rate limit the API accepts syncs at its rate: three pages at 5/s with burst 1
    /// (once: `running` with no request, for ever) take about 0.4 s, not for ever.
    @Test(arguments: [#"{"requests_per_second": 5, "burst": 1}"#, #"{"requests_per_second": 10, "burst": 2}"#,
                      #"{"requests_per_second": 20, "burst": 4}"#, #"{"requests_per_second": 2.5}"#])
    func aRateLimitWhoseBatchIsItsBurstGrants(_ limit: String) async throws {
        try await withHTTPNode(items: 30) { client, fixture, _ in
            _ = try await client.createHTTPSource("limited", #"""
                {"url": "\#(fixture.baseURL)/next?size=10", "records_path": "/rows", "primary_key": "id",
                 "pagination": {"type": "next_url", "path": "/next_url"}}
                """#, extra: #", "rate_limit": \#(limit)"#)
            let started = ContinuousClock.now
            let sync = try await client.runSync("limited", timeout: .seconds(20))
            #expect(sync["status"] == .string("completed"), "\(limit): \(sync["error"] ?? .null)")
            #expect(sync["progress"]?["records_read"] == .number(30))
            #expect(ContinuousClock.now - started < .seconds(10), "\(limit)")
        }
    }

    /// An upstream that ignores the page parameter (or the offset, a counter in the next link
    /// or the cursor), answers every page past the end with its last page, or alternates
    /// between two pages, is read until a page repeats one read before: the sync fails as
    /// `invalid_response` saying so, after a few requests instead of running for ever.
    @Test(arguments: ["page ignored", "last page again", "offset ignored", "next_url counter", "cursor counter", "link counter",
                      "alternating pages", "alternating next_url"])
    func aPageThatRepeatsThePreviousOneEndsTheSync(_ upstream: String) async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            let rows: @Sendable (Int) -> String = { from in #"[{"id":\#(from)},{"id":\#(from + 1)}]"# }
            fixture.script { r in
                let n = Int(r.query["n"] ?? r.query["page"] ?? r.query["offset"] ?? "1") ?? 1
                switch upstream {
                case "last page again": return .json(#"{"rows":\#(rows(min(n, 3) * 10))}"#)
                case "alternating pages": return .json(#"{"rows":\#(rows(n % 2 == 0 ? 5 : 1))}"#)
                case "alternating next_url": return .json(#"{"rows":\#(rows(n % 2 == 0 ? 5 : 1)),"next":"/s/x?n=\#(n + 1)"}"#)
                case "next_url counter": return .json(#"{"rows":\#(rows(1)),"next":"/s/x?n=\#(n + 1)"}"#)
                case "cursor counter": return .json(#"{"rows":\#(rows(1)),"next":"\#(n + 1)","stamp":\#(n)}"#)
                case "link counter":
                    return FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", "</s/x?n=\(n + 1)>; rel=\"next\"")],
                                                    body: #"{"rows":\#(rows(1))}"#)
                default: return .json(#"{"rows":\#(rows(1))}"#)
                }
            }
            let pagination = switch upstream {
            case "offset ignored": #"{"type": "offset", "param": "offset", "limit_param": "limit", "limit": 2}"#
            case "next_url counter", "alternating next_url": #"{"type": "next_url", "path": "/next"}"#
            case "cursor counter": #"{"type": "cursor", "param": "n", "path": "/next"}"#
            case "link counter": #"{"type": "link_header"}"#
            default: #"{"type": "page", "param": "page"}"#
            }
            _ = try await client.createHTTPSource("loop", #"""
                {"url": "\#(fixture.baseURL)/s/x", "records_path": "/rows", "primary_key": "id", "pagination": \#(pagination)}
                """#, extra: #", "retry": {"max_attempts": 1}"#)
            let sync = try await client.runSync("loop", timeout: .seconds(20))
            #expect(sync["status"] == .string("failed"), "\(upstream)")
            let error = sync["error"]
            #expect(error?["code"] == .string("invalid_response"), "\(upstream): \(error ?? .null)")
            #expect(error?["message"]?.stringValue?.contains("repeats page") == true, "\(upstream): \(error ?? .null)")
            #expect(fixture.requests.count <= 5, "\(upstream): \(fixture.requests.count) requests")
        }
    }

    /// A 429 whose `Retry-After` is tiny (`0.01`), or whose pause `retry.max_delay_seconds: 0`
    /// cuts to nothing, is retried at most `max_request_retries` times within the attempt,
    /// each retry at least `request_backoff_seconds` after the one before.
    @Test(arguments: [("0.01", ""), ("1", #", "max_delay_seconds": 0"#), ("0", "")])
    func aTooManyRequestsAnswerIsNeverMetWithABurst(_ retryAfter: String, _ retry: String) async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in FixtureUpstream.Scripted(status: 429, headers: [("Retry-After", retryAfter)], body: "{}") }
            _ = try await client.createHTTPSource("busy", #"""
                {"url": "\#(fixture.baseURL)/s/x", "records_path": "/rows", "primary_key": "id",
                 "max_request_retries": 3, "request_backoff_seconds": 0.2}
                """#, extra: #", "retry": {"max_attempts": 1\#(retry)}"#)
            let sync = try await client.runSync("busy", timeout: .seconds(30))
            #expect(sync["status"] == .string("failed"), "\(retryAfter)")
            let times = fixture.requests.map(\.at)
            #expect(times.count == 4, "one request and three retries, got \(times.count) (Retry-After \(retryAfter))")
            for (a, b) in zip(times, times.dropFirst()) {
                #expect(b - a >= .milliseconds(190), "retries \(b - a) apart (Retry-After \(retryAfter))")
            }
        }
    }

    /// A source that asks for no backoff at all (`request_backoff_seconds: 0`,
    /// `max_delay_seconds: 0`) still never meets a 429 or a 503 with a burst: every request
    /// after one, within an attempt or in the next attempt, waits at least a second.
    @Test(arguments: [429, 503])
    func aRateLimitAnswerWaitsASecondWhateverTheBackoffSays(_ status: Int) async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in FixtureUpstream.Scripted(status: status, headers: [("Retry-After", "0")], body: "{}") }
            _ = try await client.createHTTPSource("eager", #"""
                {"url": "\#(fixture.baseURL)/s/x", "records_path": "/rows", "primary_key": "id",
                 "max_request_retries": 2, "request_backoff_seconds": 0}
                """#, extra: #", "retry": {"max_attempts": 2, "initial_delay_seconds": 0, "max_delay_seconds": 0}"#)
            let sync = try await client.runSync("eager", timeout: .seconds(30))
            #expect(sync["status"] == .string("failed"))
            let times = fixture.requests.map(\.at)
            #expect(times.count == 6, "two attempts of one request and two retries, got \(times.count)")
            for (a, b) in zip(times, times.dropFirst()) {
                #expect(b - a >= .milliseconds(950), "requests \(b - a) apart after a \(status)")
            }
        }
    }

    /// An upstream that closes the key at every request for longer than a worker waits hands
    /// the sync back, listed as `upstream_rate_limited` (never `internal`), at most
    /// `retry.max_attempts` times; past that a closure fails the attempt like a 429 and the
    /// retry policy ends the sync: it fails, and its source shows `failing` (it was handed
    /// back for ever, 15 attempts a minute).
    @Test func anUpstreamThatNeverReopensEndsTheSync() async throws {
        try await withHTTPNode(items: 5) { client, fixture, _ in
            // 3 s: past the second a worker waits for a closed key, so each closure hands back.
            fixture.script { _ in FixtureUpstream.Scripted(status: 429, headers: [("Retry-After", "3")], body: "{}") }
            _ = try await client.createHTTPSource("shut", #"""
                {"url": "\#(fixture.baseURL)/s/shut", "records_path": "/rows", "primary_key": "id", "timeout_seconds": 1,
                 "max_request_retries": 3}
                """#, extra: #", "retry": {"max_attempts": 2, "initial_delay_seconds": 0, "max_delay_seconds": 5}"#)
            let done = try await client.runSync("shut", timeout: .seconds(60))
            #expect(done["status"] == .string("failed"), "\(done)")
            let attempts = done["attempts"]?.arrayValue ?? []
            let codes = attempts.compactMap { $0["error"]?["code"]?.stringValue }
            #expect(!codes.contains("internal"), "\(codes)")
            let handedBack = attempts.filter { $0["status"] == .string("queued") }
            #expect(handedBack.count == 2 && handedBack.allSatisfy { $0["error"]?["code"] == .string("upstream_rate_limited") }, "\(attempts)")
            #expect(attempts.count <= 6, "\(attempts.count) attempts")
            #expect(done["error"]?["code"] == .string("attempts_exhausted"), "\(done["error"] ?? .null)")
            #expect(try await client.call(.get, "/v1/sources/shut").json["health"] == .string("failing"))
        }
    }

    /// Two upstreams that close their keys for 4 s at every request would have held both
    /// workers of a node (each closure waited out in the worker, a hundred times): the
    /// closures now hand their syncs back, and an unrelated sync runs at once.
    @Test func aClosedKeyDoesNotHoldTheNodesWorkers() async throws {
        try await withHTTPNode(items: 5) { client, fixture, _ in
            fixture.script { _ in FixtureUpstream.Scripted(status: 429, headers: [("Retry-After", "4")], body: "{}") }
            for name in ["closed-a", "closed-b"] {
                _ = try await client.createHTTPSource(name, #"{"url": "\#(fixture.baseURL)/s/\#(name)", "records_path": "/rows", "primary_key": "id"}"#)
                #expect(try await client.call(.post, "/v1/sources/\(name)/syncs").status == .accepted)
            }
            // Both workers have met their closed keys.
            _ = try await eventually(timeout: .seconds(10)) { () -> Bool? in fixture.requests.count >= 2 ? true : nil }
            try await Task.sleep(for: .milliseconds(300))
            _ = try await client.createHTTPSource("free", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id"}"#)
            let started = ContinuousClock.now
            let free = try await client.runSync("free", timeout: .seconds(20))
            #expect(free["status"] == .string("completed"))
            // A worker waits out at most 1 s of a closure before handing the sync back; under the
            // 4 s closure a worker held for it would make this at least 4 s (loaded runs took 2.8 s).
            #expect(ContinuousClock.now - started < .milliseconds(3500), "an unrelated sync waited \(ContinuousClock.now - started)")
            // The closed syncs are queued until their keys reopen, not failed.
            let closed = try await client.call(.get, "/v1/sources/closed-a").json
            #expect(closed["rate_limited_until"]?.stringValue != nil)
        }
    }

    /// Two sources on a rate limit of one request in 1,000 s would have held both workers of a
    /// node for the whole wait of their second page: a grant further off than 10 s hands the
    /// sync back to run then, and an unrelated sync runs at once.
    @Test func aSlowRateLimitDoesNotHoldTheNodesWorkers() async throws {
        try await withHTTPNode(items: 6) { client, fixture, _ in
            for name in ["slow-a", "slow-b"] {
                _ = try await client.createHTTPSource(name, #"""
                    {"url": "\#(fixture.baseURL)/next?size=2", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"}}
                    """#, extra: #", "rate_limit": {"requests_per_second": 0.001, "burst": 1}"#)
                #expect(try await client.call(.post, "/v1/sources/\(name)/syncs").status == .accepted)
            }
            // Each has spent its one request on its first page and waits for the next grant.
            _ = try await eventually(timeout: .seconds(10)) { () -> Bool? in fixture.requests.count >= 2 ? true : nil }
            let handedBack = try await eventually(timeout: .seconds(20)) { () -> [JSONValue]? in
                let items = try await client.call(.get, "/v1/syncs?status=queued").json["items"]?.arrayValue ?? []
                return items.count == 2 ? items : nil
            }
            for sync in handedBack {
                #expect(sync["progress"]?["pages"] == .number(1), "\(sync)")
                let message = sync["attempts"]?.arrayValue?.last?["error"]?["message"]?.stringValue ?? ""
                #expect(message.contains("rate limit"), "\(message)")
            }
            _ = try await client.createHTTPSource("free", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id"}"#)
            let started = ContinuousClock.now
            let free = try await client.runSync("free", timeout: .seconds(20))
            #expect(free["status"] == .string("completed"))
            // A worker waits out at most 1 s of a closure before handing the sync back; under the
            // 4 s closure a worker held for it would make this at least 4 s (loaded runs took 2.8 s).
            #expect(ContinuousClock.now - started < .milliseconds(3500), "an unrelated sync waited \(ContinuousClock.now - started)")
            #expect(fixture.requests.count == 3, "the slow syncs sent nothing more")
        }
    }

    /// A slow rate limit hands the sync back before each page, so every attempt reads one
    /// page: the pages read before ride in the checkpoint, and an upstream that ignores the
    /// page parameter still ends the sync as `invalid_response` instead of running for ever.
    @Test func aLoopIsCaughtAcrossAttemptsThatEachReadOnePage() async throws {
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in .json(#"{"rows": [{"id": 1}, {"id": 2}]}"#) }
            _ = try await client.createHTTPSource("slowloop", #"""
                {"url": "\#(fixture.baseURL)/s/x", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "page", "param": "page"}}
                """#, extra: #", "rate_limit": {"requests_per_second": 0.08, "burst": 1}, "retry": {"max_attempts": 1}"#)
            let id = try #require(try await client.call(.post, "/v1/sources/slowloop/syncs").json["id"]?.stringValue)
            let done = try await client.waitTerminal(id, timeout: .seconds(40))
            #expect(done["status"] == .string("failed"), "\(done)")
            #expect(done["error"]?["code"] == .string("invalid_response"))
            #expect(done["error"]?["message"]?.stringValue?.contains("repeats page 1") == true, "\(done["error"] ?? .null)")
            #expect((done["attempts"]?.arrayValue?.count ?? 0) >= 2, "the pages were read by different attempts")
            #expect(fixture.requests.count == 2)
        }
    }
}
