import Foundation
import NIOHTTP1
import Testing
@testable import SyncConnectors

/// `X-RateLimit-Reset` / `RateLimit-Reset` with `Remaining: 0`: seconds from now, or a Unix
/// time (a value of at least 10^9), with or without a fraction; hostile values are bounded
/// (7 days) or ignored, never trusted.
@Suite("Rate-limit reset headers from a hostile upstream")
struct RateLimitResetTests {
    static let now = Date(timeIntervalSince1970: 1_796_327_800)  // 2026-12-03T19:56:40Z

    static func closedFor(_ reset: String, remaining: String = "0") -> Double? {
        let headers = HTTPHeaders([("X-RateLimit-Remaining", remaining), ("X-RateLimit-Reset", reset)])
        return UpstreamClient.closeSignal(status: 200, headers: headers, now: now).map { $0.timeIntervalSince(now) }
    }

    @Test(arguments: [
        // Unix times, whole and with a fraction (GitHub sends whole seconds, others milliseconds).
        ("1796327809", 9.0), ("1796327809.943", 9.943), ("1796327809.9", 9.9), ("1796327809.000", 9.0),
        ("01796327809.5", 9.5), ("1796327800.5", 0.5),
        // Seconds from now, whole and with a fraction.
        ("2", 2.0), ("2.5", 2.5), ("0.25", 0.25), ("00000002", 2.0),
        // Far future: bounded to the 7-day ceiling, whether a time or a delay.
        ("999999999", UpstreamClient.retryAfterCeiling), ("999999999.5", UpstreamClient.retryAfterCeiling),
        ("4102444800", UpstreamClient.retryAfterCeiling), ("4102444800.25", UpstreamClient.retryAfterCeiling),
        ("18446744073709551616", UpstreamClient.retryAfterCeiling), ("18446744073709551616.5", UpstreamClient.retryAfterCeiling),
    ] as [(String, Double)])
    func aResetClosesTheKeyUntilIt(_ reset: String, _ expected: Double) throws {
        let seconds = try #require(Self.closedFor(reset), "\(reset)")
        #expect(abs(seconds - expected) < 0.000_5, "\(reset): closed for \(seconds) s")
    }

    @Test(arguments: [
        // In the past or now: nothing to wait for.
        "1796327799", "1796327799.5", "1796327800", "1000000000", "1000000000.5", "0", "0.0",
        // Not a number of seconds.
        "inf", "nan", "-5", "-1796327809.5", "1e9", "0x10", ".5", "5.", "1.2.3", "", "soon", "+5", "٣", "1 2",
    ])
    func aResetThatIsNotAFutureTimeIsIgnored(_ reset: String) {
        #expect(Self.closedFor(reset) == nil, "\(reset)")
    }

    @Test func onlyASpentBudgetCloses() {
        #expect(Self.closedFor("1796327809.943", remaining: "1") == nil)
        #expect(Self.closedFor("1796327809.943", remaining: " 0 ") != nil)
    }
}

/// `Link` (RFC 8288): link-values separated by commas, parameters by semicolons, values a
/// token or a quoted-string (with `\` escapes) that may hold either separator; only the first
/// `rel` of a link counts, relation types are case-insensitive and space-separated.
@Suite("Link headers from a hostile upstream")
struct LinkHeaderGrammarTests {
    static func next(_ header: String) -> String? { (try? LinkHeader.nextTarget(header)).map(String.init) }

    @Test func quotedParametersHoldSeparators() {
        #expect(Self.next(#"<https://h/evil>; title="x; rel=next"; rel="prev", <https://h/p2>; rel="next""#) == "https://h/p2")
        #expect(Self.next(#"<https://h/evil>; title="x, <https://h/e2>; rel=next"; rel="prev", <https://h/p2>; rel="next""#) == "https://h/p2")
        #expect(Self.next(#"<https://h/evil>; title="a \"; rel=next"; rel=prev, <https://h/p2>; rel=next"#) == "https://h/p2")
        #expect(Self.next(#"<https://h/evil>; title="a \\"; rel=next"#) == "https://h/evil", "an escaped backslash ends the string before ; rel=next")
        #expect(Self.next(#"<https://h/evil>; title*=UTF-8''x%3B%20rel%3Dnext; rel="prev""#) == nil)
    }

    @Test func theFirstRelCountsAndRelationsAreCaseInsensitive() {
        #expect(Self.next(#"<https://h/a>; rel="prev"; rel="next""#) == nil)
        #expect(Self.next(#"<https://h/a>; rel="next"; rel="prev""#) == "https://h/a")
        #expect(Self.next(#"<https://h/a>; REL=NEXT"#) == "https://h/a")
        #expect(Self.next(#"<https://h/a>;rel=next"#) == "https://h/a")
        #expect(Self.next("<https://h/a> ; rel = \"prev\tnext\"") == "https://h/a")
        #expect(Self.next(#"<https://h/a>; rel="nextpage""#) == nil)
        #expect(Self.next(#"<https://h/a>; relation="next""#) == nil)
        #expect(Self.next(#"<https://h/a>, <https://h/b>; rel=next"#) == "https://h/b")
        #expect(Self.next(#"<https://h/a>; rel="last", <https://h/b>; rel="next", <https://h/c>; rel="next""#) == "https://h/b")
    }

    /// A header that does not parse is the upstream's error, never "no next page" (that would
    /// end a full sync early and delete what it did not reach), and never a guess.
    @Test func aMalformedHeaderIsAnErrorNotANextPageOrTheEnd() throws {
        for header in [#"<https://h/a>; title="never closed; rel=next"#, #"junk <https://h/a>; rel=next, <https://h/b>; rel=next"#,
                       #"<https://h/a; rel=next"#, #"<https://h/a> rel=next"#, #"<https://h/a>; =next"#, #"<https://h/a>; rel="next"x"#,
                       #"<https://h/a>; rel=next, junk"#, #"<https://h/a>; r\el=next"#] {
            #expect(throws: LinkHeader.Malformed.self, "\(header)") { _ = try LinkHeader.nextTarget(header) }
        }
        // Empty list elements and empty parameters are allowed (RFC 9110 §5.6.1).
        #expect(try LinkHeader.nextTarget("") == nil)
        #expect(try LinkHeader.nextTarget(",,, ,") == nil)
        #expect(try LinkHeader.nextTarget(#", <https://h/a>; ; rel=next ,"#) == "https://h/a")
        #expect(try LinkHeader.nextTarget(#"<>; rel=next"#) == "")
        #expect(try LinkHeader.nextTarget(nil) == nil)
    }
}
