import Foundation
import Testing
import SyncCore
@testable import SyncConnectors

@Suite("http-json parts: egress rules, Retry-After, Link, query strings, config")
struct HTTPPartsTests {
    @Test func defaultPolicyDeniesLinkLocalAndMetadataButNotLoopback() async throws {
        let policy = EgressPolicy.default
        for host in ["169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254", "100.100.100.200", "metadata.google.internal"] {
            await #expect(throws: SyncError.self, "\(host)") { _ = try await policy.vet(host: host, port: 80) }
        }
        #expect(try await policy.vet(host: "127.0.0.1", port: 80) == [127, 0, 0, 1])
        #expect(try await policy.vet(host: "::1", port: 80).count == 16)
        do {
            _ = try await policy.vet(host: "169.254.169.254", port: 80)
        } catch let error as SyncError {
            #expect(error.code == .egressBlocked)
            #expect(!error.retryable)
        }
    }

    @Test func allowRulesWinAndDenyRulesMatchCIDRsAndSubdomains() async throws {
        let policy = EgressPolicy(allow: [EgressPolicy.Rule("169.254.10.0/24")!], deny: [EgressPolicy.Rule("10.0.0.0/8")!, EgressPolicy.Rule("internal.example")!, EgressPolicy.Rule("2001:db8::/32")!])
        #expect(try await policy.vet(host: "169.254.10.7", port: 80).count == 4)
        await #expect(throws: SyncError.self) { _ = try await policy.vet(host: "169.254.11.7", port: 80) }
        await #expect(throws: SyncError.self) { _ = try await policy.vet(host: "10.200.3.4", port: 80) }
        await #expect(throws: SyncError.self) { _ = try await policy.vet(host: "api.internal.example", port: 80) }
        await #expect(throws: SyncError.self) { _ = try await policy.vet(host: "[2001:db8::5]", port: 80) }
        #expect(try await policy.vet(host: "11.0.0.1", port: 80).count == 4)
        #expect(EgressPolicy.Rule("10.0.0.0/33") == nil)
        #expect(EgressPolicy.Rule("not a host!") == nil)
    }

    /// The unspecified addresses reach the machine itself: denied by default, and judged as
    /// the loopback address they reach by a policy that denies loopback (`[::]` once slipped
    /// past `--egress-deny ::1/128` and connected to `::1`).
    @Test func unspecifiedAddressesAreDeniedAndJudgedAsLoopback() async throws {
        for host in ["[::]", "::", "0.0.0.0", "[::0]", "[0:0:0:0:0:0:0:0]", "0"] {
            await #expect(throws: SyncError.self, "\(host)") { _ = try await EgressPolicy.default.vet(host: host, port: 80) }
        }
        let noLoopback = EgressPolicy(deny: [EgressPolicy.Rule("127.0.0.0/8")!, EgressPolicy.Rule("::1/128")!])
        for host in ["[::]", "0.0.0.0", "[::1]", "127.0.0.1", "[::ffff:127.0.0.1]"] {
            await #expect(throws: SyncError.self, "\(host)") { _ = try await noLoopback.vet(host: host, port: 80) }
        }
        #expect(try await noLoopback.vet(host: "10.1.2.3", port: 80) == [10, 1, 2, 3])
        // Malformed rules are refused, never an index out of range.
        for text in ["/", "//", "/8", "10.0.0.0/", "10.0.0.0//8", " / "] {
            #expect(EgressPolicy.Rule(text) == nil, "\(text)")
        }
    }

    @Test func retryAfterReadsSecondsAndHTTPDates() {
        #expect(UpstreamClient.retryAfter("2") == 2)
        #expect(UpstreamClient.retryAfter(" 120 ") == 120)
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        let later = UpstreamClient.retryAfter("Sun, 11 Nov 2026 08:26:50 GMT", now: Date(timeIntervalSince1970: 1_794_385_600))
        #expect(later.map { abs($0 - 10) < 0.001 } == true, "\(String(describing: later))")
        #expect(UpstreamClient.retryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == 0)
        #expect(UpstreamClient.retryAfter("soon") == nil)
        #expect(UpstreamClient.retryAfter(nil) == nil)
        #expect(UpstreamClient.retryAfter("-5") == nil)
    }

    @Test func linkHeaderFindsRelNextAmongOthers() throws {
        let base = URL(string: "http://h/api/items?page=1")!
        // As the source reads it: the target's text, resolved against the page that named it.
        func next(_ header: String) -> String? { (try? LinkHeader.nextTarget(header)).flatMap { HTTPURL.parse(String($0), relativeTo: base) }?.absoluteString }
        #expect(next(#"<http://h/api/items?page=2>; rel="next", <http://h/api/items?page=9>; rel="last""#) == "http://h/api/items?page=2")
        #expect(next(#"<http://h/first>; rel="first", </api/items?page=3>; rel="prev next""#) == "http://h/api/items?page=3")
        #expect(next(#"<http://h/x?a=1,2>; title="a, b"; rel=next"#) == "http://h/x?a=1,2")
        #expect(try LinkHeader.nextTarget(#"<http://h/prev>; rel="prev""#) == nil)
        #expect(try LinkHeader.nextTarget(nil) == nil)
    }

    @Test func queryParametersAreEncodedAndReplaced() {
        let url = URL(string: "http://h/x?_size=10&keep=1")!
        let out = QueryString.appending([("_size", "1000"), ("updated_at__gte", "2026-11-20T10:00:00+01:00"), ("q", "a b&c")], to: url)
        #expect(out.absoluteString == "http://h/x?keep=1&_size=1000&updated_at__gte=2026-11-20T10%3A00%3A00%2B01%3A00&q=a%20b%26c")
    }

    @Test func cursorsCompareNumericallyOrAsStrings() {
        #expect(CursorOrder.isGreater(.number(10), than: .number(9)))
        #expect(CursorOrder.isGreater(.string("2026-11-21T00:00:00Z"), than: .string("2026-11-20T23:59:59Z")))
        #expect(CursorOrder.max(nil, .number(3)) == .number(3))
        #expect(CursorOrder.max(.number(5), .number(3)) == .number(5))
    }

    @Test func configDefaultsAndPaginationShapes() throws {
        let parsed = try HTTPJSONConfig.parse([
            "url": .string("https://api.example/v1/items"), "primary_key": .array([.string("a"), .string("b")]),
            "pagination": .object(["type": .string("page")]),
        ]).get()
        #expect(parsed.pagination == .page(param: "page", sizeParam: nil, size: nil, start: 1))
        #expect(parsed.recordsPath.tokens.isEmpty)
        #expect(parsed.timeoutSeconds == 30 && parsed.maxRequestRetries == 5)
        #expect(parsed.primaryKey == ["a", "b"])
        #expect(JSONPointer("/a~1b/c~0d")?.tokens == ["a/b", "c~d"])
        #expect(JSONPointer("a") == nil)
        #expect(JSONPointer("/a~2") == nil)
    }
}

/// Config numbers that must be whole refuse fractions and huge values instead of truncating.
@Suite("http-json config: whole numbers")
struct HTTPJSONWholeNumberTests {
    @Test(arguments: ["max_record_bytes", "max_page_bytes", "max_request_retries"])
    func aFractionOrAHugeValueIsRefusedNamingTheField(_ key: String) {
        for value in [JSONValue.number(100_000.5), .number(1e300), .number(-1), .number(.nan), .string("5")] {
            let config: JSONObject = ["url": .string("http://127.0.0.1:9/x"), "records_path": .string("/rows"), "primary_key": .string("id"), key: value]
            guard case .failure(let errors) = HTTPJSONConfig.parse(config) else {
                Issue.record("\(key) = \(value) was accepted")
                continue
            }
            #expect(errors.errors.contains { $0.field == "config.\(key)" }, "\(key) = \(value): \(errors)")
        }
        let whole: JSONObject = ["url": .string("http://127.0.0.1:9/x"), "records_path": .string("/rows"), "primary_key": .string("id"), key: .number(4096)]
        if case .failure(let errors) = HTTPJSONConfig.parse(whole), key != "max_request_retries" { Issue.record("\(key) = 4096 refused: \(errors)") }
    }
}

/// The page hash that compares pages: the same bytes give the same value (on every node: a
/// fixed value is checked), and a change of any one byte, or of the length, gives another.
@Suite("Page hash")
struct PageHashTests {
    func hash(_ bytes: [UInt8]) -> Int64 { bytes.withUnsafeBytes(PageHash.of) }

    @Test func sameBytesSameHashAndEveryByteCounts() {
        let page = Array(#"{"rows":[{"id":1},{"id":2}],"next":"/p?n=2"}"#.utf8)
        #expect(hash(page) == hash(Array(page)))
        #expect(hash(Array("abc".utf8)) == hash(Array("abc".utf8)))
        #expect(hash([]) != hash([0]))
        #expect(hash([0]) != hash([0, 0]))
        for i in page.indices {
            var changed = page
            changed[i] ^= 0x01
            #expect(hash(changed) != hash(page), "byte \(i)")
        }
        // A fixed value: a checkpoint's signatures mean the same on every node and build.
        #expect(hash(Array("tributary".utf8)) == hash(Array("tributary".utf8)))
        #expect(hash(Array("tributary".utf8)) == PageHashTests.known)
    }

    static let known: Int64 = 417_395_796_990_217_661
}

@Suite("Retry-After from a hostile upstream")
struct RetryAfterParsingTests {
    @Test(arguments: [
        ("inf", nil), ("Infinity", nil), ("nan", nil), ("-5", nil), ("soon", nil), ("", nil),
        ("99999999999999999999", UpstreamClient.retryAfterCeiling), ("1000000000000", UpstreamClient.retryAfterCeiling),
        ("1e400", nil), ("1e12", nil), ("120", 120), ("0", 0), ("1.5", 1.5),
        ("Fri, 31 Dec 9999 23:59:59 GMT", UpstreamClient.retryAfterCeiling),
    ] as [(String, Double?)])
    func isClampedOrIgnored(_ header: String, _ expected: Double?) {
        #expect(UpstreamClient.retryAfter(header) == expected, "\(header)")
    }

    /// `Retry-After` is RFC 9110's grammar: digits (leading zeros are zeros, not a 7-day
    /// ceiling), a plain decimal some upstreams send, or an HTTP-date in any of its three
    /// forms; hex, exponents, signs and words are not a delay.
    @Test func retryAfterFollowsTheHTTPGrammar() {
        let now = Date(timeIntervalSince1970: 1_796_327_800)  // 2026-12-03T19:56:40Z
        for (header, expected) in [("00000002", 2.0), ("0", 0), ("000", 0), ("0000000000000000000005", 5), ("1.5", 1.5), ("0.01", 0.01)] as [(String, Double)] {
            #expect(UpstreamClient.retryAfter(header, now: now) == expected, "\(header)")
        }
        for header in ["0x3", "0x1p2", "1e1", "1E1", "+5", "-0", ".5", "5.", "1.2.3", "inf", "nan", "infinity", "1_000", "٣", "３", "1 2"] {
            #expect(UpstreamClient.retryAfter(header, now: now) == nil, "\(header)")
        }
        // The three HTTP-date forms (RFC 9110 §5.6.7): IMF-fixdate, RFC 850, asctime.
        #expect(UpstreamClient.retryAfter("Thu, 03 Dec 2026 19:56:58 GMT", now: now) == 18)
        #expect(UpstreamClient.retryAfter("Thursday, 03-Dec-26 19:56:58 GMT", now: now) == 18)
        #expect(UpstreamClient.retryAfter("Thu Dec  3 19:56:59 2026", now: now) == 19)
        #expect(UpstreamClient.retryAfter("Sat Dec  5 19:56:40 2026", now: now) == 172_800)
    }
}
