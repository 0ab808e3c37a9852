/// How a record's primary key value becomes the key it is stored, listed and fetched by.
///
/// One rule, injective, so two different key values never share a stored record:
/// - a number is written in its canonical form (``ExactNumber/canonical``): `1`, `1.0`
///   and `1e0` are one key, `1`; every digit of a 20-digit id is kept;
/// - a string is written as it is, unless that text could be read as another key: an
///   empty string or one that is a JSON number or starts with `"` is written as a JSON
///   string, so `"1"` (a string) and `1` (a number) are two keys, `"1"` and `1`;
/// - a composite key is a JSON array of its parts, numbers canonical and strings quoted:
///   `[7,"eu"]`.
public enum RecordKey {
    /// The longest key a record may have, in UTF-8 bytes: what both stores index (PostgreSQL's
    /// B-tree refuses an entry past about 2,700 bytes).
    public static let maxBytes = 2048

    /// Why no store can hold `key` as a record's key, or `nil` when it can: longer than
    /// ``maxBytes``, or holding U+0000 (PostgreSQL's text refuses it). The same rule on both
    /// stores, so a key is a record on both or a record error on both.
    public static func unstorable(_ key: String) -> String? {
        let utf8 = key.utf8
        if utf8.count > maxBytes { return "the record key is \(utf8.count) bytes, over the \(maxBytes) bytes a key may have" }
        if utf8.contains(0) { return "the record key holds U+0000, which no store keeps in a key" }
        return nil
    }

    public enum Part: Sendable, Equatable {
        case string(String)
        /// A number's canonical text (``ExactNumber/canonical``).
        case number(String)
    }

    /// The key of a one-field primary key.
    public static func single(_ part: Part) -> String {
        switch part {
        case .number(let n): n
        case .string(let s): needsQuotes(s) ? jsonQuoted(s) : s
        }
    }

    public static func encode(_ parts: [Part]) -> String {
        if parts.count == 1 { return single(parts[0]) }
        return "[" + parts.map { part in
            switch part {
            case .number(let n): n
            case .string(let s): jsonQuoted(s)
            }
        }.joined(separator: ",") + "]"
    }

    static func needsQuotes(_ s: String) -> Bool {
        s.isEmpty || s.utf8.first == UInt8(ascii: "\"") || ExactNumber.isLiteral(s[...])
    }

    /// `s` as a JSON string literal.
    public static func jsonQuoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// A string compared and hashed by its UTF-8 bytes. Swift's `String` is equal to another that
/// is canonically equivalent (`é` precomposed and `e` + U+0301, `Å` and U+212B), while both
/// stores compare bytes: every set or dictionary of values from outside that must tell
/// different bytes apart (record keys, cursors, rate-limit keys) is keyed by this.
public struct BytewiseString: Hashable, Sendable {
    public var text: String
    public init(_ text: String) { self.text = text }

    public static func == (a: Self, b: Self) -> Bool {
        a.text.utf8.count == b.text.utf8.count && a.text.utf8.elementsEqual(b.text.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        var copy = text  // withUTF8 needs a mutable string; a native one is not copied
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

extension String {
    /// Whether two strings hold the same UTF-8 bytes (`==` on `String` compares by canonical equivalence).
    public func sameBytes(as other: String) -> Bool { BytewiseString(self) == BytewiseString(other) }

    /// Byte order (the order of code points): how both stores order text.
    public func bytesPrecede(_ other: String) -> Bool { utf8.lexicographicallyPrecedes(other.utf8) }
}
