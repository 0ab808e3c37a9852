import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import SyncCore

@Suite("Identifiers, JSON values, timestamps, hashes")
struct ValueTests {
    @Test func identifiersAreUniqueAndSortByCreation() {
        let ids = (0..<10_000).map { _ in Identifier.make("syn") }
        #expect(Set(ids).count == ids.count)
        #expect(ids == ids.sorted())
        #expect(ids.allSatisfy { $0.hasPrefix("syn_") && $0.count == 30 })
        let earlier = Identifier.make("x", now: Date(timeIntervalSince1970: 1_000_000))
        let later = Identifier.make("x", now: Date(timeIntervalSince1970: 2_000_000_000))
        #expect(earlier < later)
    }

    @Test func jsonValuesKeepTheirTypes() throws {
        let v = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"a": 1, "b": true, "c": "x", "d": null, "e": [1.5], "f": 0}"#.utf8))
        #expect(v["a"] == .number(1))
        #expect(v["b"] == .bool(true))
        #expect(v["c"] == .string("x"))
        #expect(v["d"] == .null)
        #expect(v["e"] == .array([.number(1.5)]))
        #expect(v["f"] == .number(0))
        #expect(v["a"]?.intValue == 1)
        #expect(JSONValue.number(1.5).intValue == nil)
    }

    @Test func timestampsAreRFC3339WithMilliseconds() {
        let d = Date(timeIntervalSince1970: 1_795_000_000.123)
        let s = Timestamp.format(d)
        #expect(s.hasSuffix("Z"))
        #expect(s.contains(".123"))
        #expect(abs(Timestamp.parse(s)!.timeIntervalSince1970 - d.timeIntervalSince1970) < 0.001)
        #expect(Timestamp.parse("2026-11-24T22:33:38Z") != nil)
        #expect(Timestamp.parse("yesterday") == nil)
    }

    /// RFC 3339 is read field by field and never rolled over: impossible dates and times are
    /// `nil`; their neighbours that exist are read exactly, offsets included.
    @Test func timestampsAreParsedStrictly() {
        for bad in ["2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z",
                    "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-01T25:61:61Z", "2026-01-01T24:00:00Z", "2026-01-01T23:60:00Z",
                    "2026-01-01T23:59:60Z", "0000-01-01T00:00:00Z", "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00+01:60",
                    "2026-01-01T00:00:00", "2026-01-01 00:00:00Z", "2026-1-01T00:00:00Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+0100",
                    "2026-01-01T00:00:00Z ", " 2026-01-01T00:00:00Z", "+2026-01-01T00:00:00Z", "2026-01-01T00:00:00ZZ", "２０２６-01-01T00:00:00Z",
                    "2026-01-01T00:00:00+01:00:00", "yesterday", ""] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
        let good: [(String, Double)] = [
            ("2024-02-29T00:00:00Z", 1_709_164_800), ("2000-02-29T12:00:00Z", 951_825_600), ("2026-02-28T23:59:59Z", 1_772_323_199),
            ("1970-01-01T00:00:00Z", 0), ("1969-12-31T23:59:59Z", -1), ("0001-01-01T00:00:00Z", -62_135_596_800),
            ("9999-12-31T23:59:59Z", 253_402_300_799), ("2026-01-01T01:00:00+01:00", 1_767_225_600), ("2025-12-31T19:00:00-05:00", 1_767_225_600),
            ("2026-01-01t00:00:00z", 1_767_225_600), ("2026-01-01T00:00:00.5Z", 1_767_225_600.5), ("2026-01-01T00:00:00.123456789Z", 1_767_225_600.123_456_789),
            ("2026-01-01T00:00:00+23:59", 1_767_139_260),
        ]
        for (text, seconds) in good {
            #expect(Timestamp.parse(text).map { abs($0.timeIntervalSince1970 - seconds) < 0.000_001 } == true, "\(text): \(String(describing: Timestamp.parse(text)?.timeIntervalSince1970))")
        }
    }

    /// The hand-written formatter agrees with the C library's calendar on the edges (leap
    /// days, centuries, the year 1 and 9999, before 1970) and on 100,000 random instants.
    @Test func timestampsAgreeWithGmtime() {
        func expected(_ t: Double) -> String {
            let totalMs = Int64((t * 1000).rounded())
            var seconds = time_t(totalMs >= 0 ? totalMs / 1000 : (totalMs - 999) / 1000)
            var parts = tm()
            gmtime_r(&seconds, &parts)
            let ms = Int(totalMs - Int64(seconds) * 1000)
            return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                          parts.tm_hour, parts.tm_min, parts.tm_sec, ms)
        }
        var instants: [Double] = [0, -0.0005, -0.001, -1, 86_399.9995, 951_782_400, 951_868_799.999, 4_107_542_400,
                                  -2_208_988_800, -62_135_596_800, 253_402_300_799.999, 1_795_000_000.123, 1_709_164_800]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<100_000 { instants.append(Double.random(in: -62_135_596_800...253_402_300_799, using: &generator)) }
        for t in instants {
            let date = Date(timeIntervalSince1970: t)
            let text = Timestamp.format(date)
            #expect(text == expected(date.timeIntervalSince1970), "\(t)")
            if text != expected(date.timeIntervalSince1970) { break }
        }
    }

    /// What the writer emits parses back (Foundation's parser) to the same values: every
    /// control character, quotes, backslashes, non-ASCII text, integers to ±2^53 and beyond.
    @Test func writtenJSONParsesBackToTheSameValues() throws {
        var text = (0..<0x20).map { String(UnicodeScalar(UInt8($0))) }.joined()
        text += #"quote " backslash \ slash / ünïcödé 😀 end"#
        let numbers: [Double] = [0, -0.0, 1, -1, 9, 10, 99, 100, 1234567890, -9_007_199_254_740_991, 9_007_199_254_740_991,
                                 9_007_199_254_740_992, 1e300, 0.5, -2.25, 1e-7]
        let value = JSONValue.object(["text": .string(text), "numbers": .array(numbers.map(JSONValue.number)), "empty": .string(""),
                                      "nested": .object(["b": .bool(true), "a": .bool(false), "n": .null]),
                                      "alone": .string("\"")])
        let bytes = JSONWriter.bytes(value)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(parsed["text"] as? String == text)
        #expect(parsed["empty"] as? String == "")
        #expect(parsed["alone"] as? String == "\"")
        let back = try #require(parsed["numbers"] as? [NSNumber]).map(\.doubleValue)
        #expect(back == numbers)
        #expect(String(decoding: bytes, as: UTF8.self).contains(#""nested":{"a":false,"b":true,"n":null}"#), "keys sorted")
        #expect(String(decoding: bytes, as: UTF8.self).contains("-9007199254740991,9007199254740991"), "integers as integers")
    }

    @Test func contentHashSeesEveryByte() {
        let a = Array(#"{"id":1,"v":"a"}"#.utf8)
        var b = a
        b[b.count - 3] = UInt8(ascii: "b")
        #expect(ContentHash.of(a) == ContentHash.of(a))
        #expect(ContentHash.of(a) != ContentHash.of(b))
    }

    @Test(arguments: ["a", "crm-contacts", "x.y_z-1", String(repeating: "n", count: 100)])
    func validSourceNames(_ name: String) { #expect(SourceName.isValid(name)) }

    @Test(arguments: ["", "has space", "slash/", "ünïcode", String(repeating: "n", count: 101)])
    func invalidSourceNames(_ name: String) { #expect(!SourceName.isValid(name)) }
}
