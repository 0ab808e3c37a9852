import Foundation
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
