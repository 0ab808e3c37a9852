import Foundation
import Testing
import TestSupport
@testable import SyncConnectors

@Suite("JSON scanner")
struct JSONScannerTests {
    func locate(_ json: String, _ pointers: [String]) throws -> [String?] {
        let bytes = Array(json.utf8)
        return try bytes.withUnsafeBufferPointer { buffer in
            try JSONScanner.locate(pointers.map { JSONPointer($0)! }, in: buffer).map { value in
                value.map { JSONScanner.literal($0, in: buffer) }
            }
        }
    }

    func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { (try? JSONScanner.locate([], in: $0)) != nil }
    }

    @Test func pointersFindNestedValues() throws {
        let doc = #"{"rows": [{"id": 1}, {"id": 2}], "meta": {"next": "/p?page=2", "a/b": 1, "m~n": 2}, "list": [10, [20, 30]]}"#
        #expect(try locate(doc, ["/rows", "/meta/next", "/meta/a~1b", "/meta/m~0n", "/list/1/0", "/missing", "/list/7", ""]) == [
            #"[{"id": 1}, {"id": 2}]"#, #""/p?page=2""#, "1", "2", "20", nil, nil, doc,
        ])
    }

    @Test func escapedKeysMatchTheirUnescapedNames() throws {
        #expect(try locate(#"{"r\u006fws": [1], "n\"x": true}"#, ["/rows", "/n\"x"]) == ["[1]", "true"])
    }

    @Test func elementsAndMembersAreExtractedAsByteRanges() throws {
        let doc = Array(#" [ {"id": "a\"b", "updated_at": "2026-01-01", "x": {"id": 9}}, {"id": 7}, 42, {"name": "no id"} ] "#.utf8)
        try doc.withUnsafeBufferPointer { buffer in
            let root = try #require(try JSONScanner.locate([JSONPointer("")!], in: buffer)[0])
            var keys: [String?] = []
            var cursors: [String?] = []
            JSONScanner.forEachElement(of: root, in: buffer, members: ["id", "updated_at"]) { element, m in
                keys.append(m[0].map { $0.kind == .string ? JSONScanner.string($0, in: buffer)! : JSONScanner.literal($0, in: buffer) })
                cursors.append(m[1].flatMap { JSONScanner.string($0, in: buffer) })
            }
            #expect(keys == ["a\"b", "7", nil, nil])
            #expect(cursors == ["2026-01-01", nil, nil, nil])
            // Element ranges are the same with or without members to read.
            var ranges: [Range<Int>] = []
            JSONScanner.forEachElement(of: root, in: buffer, members: ["id"]) { element, _ in ranges.append(element.range) }
            var plain: [Range<Int>] = []
            JSONScanner.forEachElement(of: root, in: buffer) { plain.append($0.range) }
            #expect(ranges.count == 4)
            #expect(ranges == plain)
        }
    }

    @Test func emptyContainers() throws {
        let doc = Array(#"{"rows": []}"#.utf8)
        try doc.withUnsafeBufferPointer { buffer in
            let rows = try #require(try JSONScanner.locate([JSONPointer("/rows")!], in: buffer)[0])
            var count = 0
            JSONScanner.forEachElement(of: rows, in: buffer) { _ in count += 1 }
            #expect(count == 0)
        }
    }

    @Test(arguments: [
        "", " ", "{", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":1,}", "{a:1}", "01", "1.", ".5", "-", "1e", "1e+",
        "tru", "nul", "\"abc", "\"a\\x\"", "\"\\u12G4\"", "\"tab\there\"", "[1]]", "{} {}", "[\"\u{1}\"]", "NaN", "Infinity",
    ])
    func rejectsInvalidDocuments(_ text: String) {
        #expect(!isValid(Array(text.utf8)), "accepted \(text.debugDescription)")
    }

    @Test(arguments: [
        "0", "-0", "1.5e10", "-12.5E-3", "true", "null", "\"\"", "[]", "{}", " [ 1 , \"x\" , null ] ",
        "{\"a\":{\"b\":[{},[]]}}", "\"\\u00e9\\n\\\"\"", "\"héllo ✓ 𝄞\"",
    ])
    func acceptsValidDocuments(_ text: String) {
        #expect(isValid(Array(text.utf8)), "rejected \(text.debugDescription)")
    }

    @Test func trailingCommasAreRejectedAndHugeNumbersAccepted() {
        #expect(!isValid(Array("[1,2,]".utf8)))
        #expect(!isValid(Array(#"{"a":1,}"#.utf8)))
        #expect(isValid(Array("1e999".utf8)))
    }

    @Test func rejectsInvalidUTF8AndExcessiveNesting() {
        #expect(!isValid([0x22, 0xC3, 0x28, 0x22]))          // bad continuation
        #expect(!isValid([0x22, 0xC0, 0xAF, 0x22]))          // overlong
        #expect(!isValid([0x22, 0xED, 0xA0, 0x80, 0x22]))    // UTF-16 surrogate
        #expect(!isValid([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22])) // above U+10FFFF
        #expect(!isValid([0x22, 0xE2, 0x82]))                // truncated
        #expect(isValid(Array(String(repeating: "[", count: 500).utf8) + Array(String(repeating: "]", count: 500).utf8)))
        #expect(!isValid(Array(String(repeating: "[", count: 100_000).utf8)))
    }

    /// Differential fuzzing against Foundation's parser: random documents, randomly mutated;
    /// both must agree on validity (documents with lone-surrogate escapes excepted, which
    /// RFC 8259 leaves to implementations).
    @Test func agreesWithFoundationOnRandomMutations() throws {
        var rng = SeededGenerator(seed: 0x5EED)
        var disagreements: [String] = []
        for _ in 0..<20_000 {
            var doc = Array(Self.randomValue(&rng, depth: 0).utf8)
            for _ in 0..<Int(rng.next() % 3) where !doc.isEmpty {
                let at = Int(rng.next() % UInt64(doc.count))
                switch rng.next() % 3 {
                case 0: doc.remove(at: at)
                case 1: doc.insert(Self.alphabet[Int(rng.next() % UInt64(Self.alphabet.count))], at: at)
                default: doc[at] = Self.alphabet[Int(rng.next() % UInt64(Self.alphabet.count))]
                }
            }
            let text = String(decoding: doc, as: UTF8.self)
            if text.lowercased().contains("\\ud") { continue }
            let foundation = (try? JSONSerialization.jsonObject(with: Data(doc), options: [.fragmentsAllowed])) != nil
            let ours = isValid(doc)
            if foundation == ours { continue }
            // Known, deliberate differences: Foundation accepts trailing commas (RFC 8259 does not),
            // and rejects numbers beyond Double's range (RFC 8259 allows any size).
            if foundation && text.range(of: #",\s*[\]}]"#, options: .regularExpression) != nil { continue }
            if ours && text.range(of: #"[eE][+-]?[0-9]{3,}|[0-9]{20,}"#, options: .regularExpression) != nil { continue }
            disagreements.append(text)
        }
        #expect(disagreements.isEmpty, "first disagreements: \(disagreements.prefix(5))")
    }

    static let alphabet = Array("{}[],:\"\\ -0123456789.eEtrufalsn \u{7}xé".utf8)

    static func randomValue(_ rng: inout SeededGenerator, depth: Int) -> String {
        switch rng.next() % (depth > 3 ? 5 : 7) {
        case 0: return ["0", "-1", "3.25", "1e5", "-0.5E-2", "123456789"][Int(rng.next() % 6)]
        case 1: return ["\"\"", "\"abc\"", "\"a\\\"b\"", "\"\\u00e9\"", "\"é✓\"", "\"\\n\\t\""][Int(rng.next() % 6)]
        case 2: return ["true", "false", "null"][Int(rng.next() % 3)]
        case 3: return "\"k\(rng.next() % 100)\""
        case 4: return String(rng.next() % 1000)
        case 5: return "[" + (0..<Int(rng.next() % 4)).map { _ in randomValue(&rng, depth: depth + 1) }.joined(separator: ",") + "]"
        default:
            return "{" + (0..<Int(rng.next() % 4)).map { i in "\"f\(i)\": " + randomValue(&rng, depth: depth + 1) }.joined(separator: ", ") + "}"
        }
    }
}


