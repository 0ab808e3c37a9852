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
