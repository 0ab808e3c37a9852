/// A validating JSON scanner that never builds an object tree.
///
/// Why by hand: Foundation's `JSONSerialization` and `JSONDecoder` build a whole object tree
/// of every page, then the records would be serialized again to be stored. A sync
/// needs only a few things from a page — the records array, each record's byte
/// range, its primary-key and cursor fields, and the next-page link — so the
/// scanner validates the whole document (RFC 8259, UTF-8 included) in one pass
/// and hands back byte ranges; records are stored as the bytes that came.
public struct JSONScanner {
    /// Why a document is not valid JSON, with the byte offset.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "invalid JSON at byte \(offset): \(reason)" }
    }

    /// The JSON type of a value, from its first byte.
    public enum Kind: Sendable, Equatable {
        case object, array, string, number, bool, null
    }

    /// A value's location in the document.
    public struct Value: Sendable, Equatable {
        public var range: Range<Int>
        public var kind: Kind
    }

    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    /// Maximum nesting depth (arrays and objects), against stack exhaustion.
    static let maxDepth = 512

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    // MARK: Public entry points

    /// Validates `document` and returns the values the pointers address (`nil` for a pointer
    /// that addresses nothing).
    public static func locate(_ pointers: [JSONPointer], in document: UnsafeBufferPointer<UInt8>) throws(SyntaxError) -> [Value?] {
        var scanner = JSONScanner(document)
        scanner.skipWhitespace()
        var found = [Value?](repeating: nil, count: pointers.count)
        let root = try scanner.scanValue(depth: 0, paths: pointers.indices.map { (pointers[$0].tokens[...], $0) }, found: &found)
        scanner.skipWhitespace()
        guard scanner.index == document.count else { throw SyntaxError(offset: scanner.index, reason: "trailing characters after the document") }
        for (i, pointer) in pointers.enumerated() where pointer.tokens.isEmpty { found[i] = root }
        return found
    }

    /// Calls `body` with each element of the (already validated) array at `array`.
    public static func forEachElement(of array: Value, in document: UnsafeBufferPointer<UInt8>, _ body: (Value) -> Void) {
        forEachElement(of: array, in: document, members: []) { element, _ in body(element) }
    }

    /// Calls `body` with each element of the (already validated) array at `array` and, for
    /// object elements, the values of the named top-level members (the last of a repeated
    /// member): one walk over each element instead of one to skip it and another to read its members.
    public static func forEachElement(
        of array: Value, in document: UnsafeBufferPointer<UInt8>, members names: [String], _ body: (Value, [Value?]) -> Void
    ) {
        let wanted = names.map { Array($0.utf8) }
        var scanner = JSONScanner(document)
        scanner.index = array.range.lowerBound + 1
        scanner.skipWhitespace()
        if scanner.peek == UInt8(ascii: "]") { return }
        var ignored = [Value?]()
        while true {
            scanner.skipWhitespace()
            let start = scanner.index
            let kind = scanner.kindAtIndex()
            var found = [Value?](repeating: nil, count: wanted.count)
            if kind == .object {
                scanner.walkMembers(depth: 2) { key, value, scanner in
                    // A repeated member: the last one wins, as it does when the stored bytes are parsed later.
                    let keyRange = key.range.lowerBound + 1..<key.range.upperBound - 1
                    for i in wanted.indices where scanner.keyEquals(keyRange, wanted[i]) { found[i] = value }
                }
            } else {
                _ = try? scanner.scanValue(depth: 1, paths: [], found: &ignored)
            }
            body(Value(range: start..<scanner.index, kind: kind), found)
            scanner.skipWhitespace()
            if scanner.peek == UInt8(ascii: ",") { scanner.index += 1 } else { return }
        }
    }

    /// The values of the named top-level members of the (already validated) object at
    /// `object` (the last of a repeated member; `nil` where absent).
    public static func members(of object: Value, in document: UnsafeBufferPointer<UInt8>, named names: [String]) -> [Value?] {
        var found = [Value?](repeating: nil, count: names.count)
        guard object.kind == .object, !names.isEmpty else { return found }
        let wanted = names.map { Array($0.utf8) }
        var scanner = JSONScanner(document)
        scanner.index = object.range.lowerBound
        scanner.walkMembers(depth: 1) { key, value, scanner in
            let keyRange = key.range.lowerBound + 1..<key.range.upperBound - 1
            for i in wanted.indices where scanner.keyEquals(keyRange, wanted[i]) { found[i] = value }
        }
        return found
    }

    /// Calls `body` with each member of the (already validated) object at `object`: its name's
    /// value (a string) and its value, in document order (a repeated name comes each time).
    public static func forEachMember(of object: Value, in document: UnsafeBufferPointer<UInt8>, _ body: (Value, Value) -> Void) {
        guard object.kind == .object else { return }
        var scanner = JSONScanner(document)
        scanner.index = object.range.lowerBound
        scanner.walkMembers(depth: 1) { key, value, _ in body(key, value) }
    }

    /// Walks the (already validated) object starting at `index` to its end, calling `body`
    /// with each member's name (a string value, quotes included) and value.
    mutating func walkMembers(depth: Int, _ body: (Value, Value, JSONScanner) -> Void) {
        var ignored = [Value?]()
        index += 1
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            let keyStart = index
            _ = try? scanString()
            let key = Value(range: keyStart..<index, kind: .string)
            skipWhitespace()
            index += 1 // ':'
            skipWhitespace()
            let valueStart = index
            let valueKind = kindAtIndex()
            _ = try? scanValue(depth: depth, paths: [], found: &ignored)
            body(key, Value(range: valueStart..<index, kind: valueKind), self)
            skipWhitespace()
            let c = peek
            index += 1
            if c != UInt8(ascii: ",") { return }
        }
    }

    /// The unescaped text of a string value. A `\\u` escape of a lone UTF-16 surrogate
    /// (`\\ud800`) becomes U+FFFD, unless `strict`: then the string is `nil` (a record key
    /// must not become the same text as another key's U+FFFD).
    public static func string(_ value: Value, in document: UnsafeBufferPointer<UInt8>, strict: Bool = false) -> String? {
        guard value.kind == .string else { return nil }
        let inner = UnsafeBufferPointer(rebasing: document[(value.range.lowerBound + 1)..<(value.range.upperBound - 1)])
        if !inner.contains(UInt8(ascii: "\\")) { return String(decoding: inner, as: UTF8.self) }
        return unescape(inner, strict: strict)
    }

    /// The literal text of a value (a number's digits, `true`, a string with its quotes).
    public static func literal(_ value: Value, in document: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: document[value.range]), as: UTF8.self)
    }

    // MARK: Scanning

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    func kindAtIndex() -> Kind {
        switch peek {
        case UInt8(ascii: "{"): .object
        case UInt8(ascii: "["): .array
        case UInt8(ascii: "\""): .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): .bool
        case UInt8(ascii: "n"): .null
        default: .number
        }
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    func error(_ reason: String) -> SyntaxError { SyntaxError(offset: index, reason: reason) }

    /// Scans one value at `index`. `paths` are the pointer suffixes still to match at this
    /// value (with their result slot); an empty suffix means "this value".
    mutating func scanValue(depth: Int, paths: [(ArraySlice<String>, Int)], found: inout [Value?]) throws(SyntaxError) -> Value {
        guard let c = peek else { throw error("unexpected end of input") }
        let start = index
        let kind: Kind
        switch c {
        case UInt8(ascii: "{"):
            guard depth < Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
            try scanObject(depth: depth + 1, paths: paths, found: &found)
            kind = .object
        case UInt8(ascii: "["):
            guard depth < Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
            try scanArray(depth: depth + 1, paths: paths, found: &found)
            kind = .array
        case UInt8(ascii: "\""):
            try scanString()
            kind = .string
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            kind = .bool
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            kind = .bool
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            kind = .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try scanNumber()
            kind = .number
        default:
            throw error("unexpected character")
        }
        let value = Value(range: start..<index, kind: kind)
        for (rest, slot) in paths where rest.isEmpty { found[slot] = value }
        return value
    }

    mutating func expectLiteral(_ literal: StaticString) throws(SyntaxError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input") }
        let lit = UnsafeBufferPointer(start: literal.utf8Start, count: count)
        for i in 0..<count where bytes[index + i] != lit[i] { throw error("invalid literal") }
        index += count
    }

    mutating func scanNumber() throws(SyntaxError) {
        if peek == UInt8(ascii: "-") { index += 1 }
        guard let first = peek, first >= 0x30 && first <= 0x39 else { throw error("invalid number") }
        if first == 0x30 {
            index += 1
        } else {
            while let d = peek, d >= 0x30 && d <= 0x39 { index += 1 }
        }
        if peek == UInt8(ascii: ".") {
            index += 1
            guard let d = peek, d >= 0x30 && d <= 0x39 else { throw error("invalid number: digits must follow the point") }
            while let d = peek, d >= 0x30 && d <= 0x39 { index += 1 }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            guard let d = peek, d >= 0x30 && d <= 0x39 else { throw error("invalid number: digits must follow the exponent") }
            while let d = peek, d >= 0x30 && d <= 0x39 { index += 1 }
        }
    }

    /// Scans a string (at its opening quote), validating escapes and UTF-8.
    mutating func scanString() throws(SyntaxError) {
        index += 1
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                index += 1
                return
            } else if c == UInt8(ascii: "\\") {
                index += 1
                guard let e = peek else { break }
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 1
                case UInt8(ascii: "u"):
                    guard index + 4 < bytes.count else { throw error("truncated \\u escape") }
                    for i in 1...4 where Self.hexValue(bytes[index + i]) == nil { throw error("invalid \\u escape") }
                    index += 5
                default:
                    throw error("invalid escape")
                }
            } else if c < 0x20 {
                throw error("control character in string")
            } else if c < 0x80 {
                index += 1
            } else {
                try scanUTF8Sequence()
            }
        }
        throw error("unterminated string")
    }

    /// Validates one multi-byte UTF-8 sequence (RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF).
    mutating func scanUTF8Sequence() throws(SyntaxError) {
        let c = bytes[index]
        let length: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; upper = 0x9F
        case 0xF0: length = 4; lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; upper = 0x8F
        default: throw error("invalid UTF-8")
        }
        guard index + length <= bytes.count else { throw error("truncated UTF-8") }
        let second = bytes[index + 1]
        guard second >= lower && second <= upper else { throw error("invalid UTF-8") }
        for i in 2..<length where bytes[index + i] & 0xC0 != 0x80 { throw error("invalid UTF-8") }
        index += length
    }

    mutating func scanArray(depth: Int, paths: [(ArraySlice<String>, Int)], found: inout [Value?]) throws(SyntaxError) {
        index += 1
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            index += 1
            return
        }
        var element = 0
        let descending = paths.filter { !$0.0.isEmpty }
        while true {
            skipWhitespace()
            var childPaths: [(ArraySlice<String>, Int)] = []
            for (rest, slot) in descending where Int(rest.first!) == element && Self.isArrayIndex(rest.first!) {
                childPaths.append((rest.dropFirst(), slot))
            }
            _ = try scanValue(depth: depth, paths: childPaths, found: &found)
            skipWhitespace()
            guard let c = peek else { throw error("unterminated array") }
            index += 1
            if c == UInt8(ascii: "]") { return }
            guard c == UInt8(ascii: ",") else { index -= 1; throw error("expected , or ] in array") }
            element += 1
        }
    }

    mutating func scanObject(depth: Int, paths: [(ArraySlice<String>, Int)], found: inout [Value?]) throws(SyntaxError) {
        index += 1
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            index += 1
            return
        }
        let descending = paths.filter { !$0.0.isEmpty }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let keyStart = index
            try scanString()
            let keyRange = keyStart + 1..<index - 1
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("expected : after key") }
            index += 1
            skipWhitespace()
            var childPaths: [(ArraySlice<String>, Int)] = []
            for (rest, slot) in descending where keyEquals(keyRange, Array(rest.first!.utf8)) {
                childPaths.append((rest.dropFirst(), slot))
            }
            _ = try scanValue(depth: depth, paths: childPaths, found: &found)
            skipWhitespace()
            guard let c = peek else { throw error("unterminated object") }
            index += 1
            if c == UInt8(ascii: "}") { return }
            guard c == UInt8(ascii: ",") else { index -= 1; throw error("expected , or } in object") }
        }
    }

    /// Whether the raw (possibly escaped) key bytes equal `name`.
    func keyEquals(_ range: Range<Int>, _ name: [UInt8]) -> Bool {
        let raw = UnsafeBufferPointer(rebasing: bytes[range])
        if !raw.contains(UInt8(ascii: "\\")) { return raw.elementsEqual(name) }
        return Self.unescape(raw).map { Array($0.utf8) == name } ?? false
    }

    static func isArrayIndex(_ token: String) -> Bool {
        token == "0" || (token.first != "0" && !token.isEmpty && token.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 })
    }

    public static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x30...0x39: UInt32(c - 0x30)
        case 0x41...0x46: UInt32(c - 0x41 + 10)
        case 0x61...0x66: UInt32(c - 0x61 + 10)
        default: nil
        }
    }

    /// Decodes the escapes of a string's inner bytes (already validated).
    public static func unescape(_ raw: UnsafeBufferPointer<UInt8>, strict: Bool = false) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= raw.count else { return nil }
            var v: UInt32 = 0
            for k in 0..<4 {
                guard let h = hexValue(raw[at + k]) else { return nil }
                v = v << 4 | h
            }
            return v
        }
        while i < raw.count {
            let c = raw[i]
            guard c == UInt8(ascii: "\\"), i + 1 < raw.count else {
                out.append(c)
                i += 1
                continue
            }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard var scalar = hex4(i) else { return nil }
                i += 4
                if (0xD800...0xDBFF).contains(scalar), i + 6 <= raw.count, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u"),
                   let low = hex4(i + 2), (0xDC00...0xDFFF).contains(low) {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                if strict && Unicode.Scalar(scalar) == nil { return nil }
                let s = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(s)).utf8))
            default: out.append(e)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
