import Foundation

extension SecretRedaction {
    /// `text` with every occurrence of one of `values` (as it is, percent-encoded, or
    /// form-encoded) replaced by `***`: what an upstream or a token endpoint echoes back of
    /// a secret it was sent, wherever it puts it and whatever the parameter is called.
    /// Values shorter than 4 bytes are left alone (they would mask ordinary text).
    public static func mask(_ text: String, values: [String]) -> String {
        var out = text
        for value in values where value.utf8.count >= 4 {
            for form in Set([value, value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? value,
                             value.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? value]) where has(out, form) {
                out = out.replacingOccurrences(of: form, with: maskText)
            }
        }
        return out
    }

    /// Any JSON value with ``mask(_:values:)`` applied to its strings.
    public static func mask(_ value: JSONValue, values: [String]) -> JSONValue {
        guard values.contains(where: { $0.utf8.count >= 4 }) else { return value }
        switch value {
        case .string(let s): return .string(mask(s, values: values))
        case .array(let a): return .array(a.map { mask($0, values: values) })
        case .object(let o): return .object(o.mapValues { mask($0, values: values) })
        default: return value
        }
    }
}

/// Text from outside made safe to store and show on one line: control characters (C0, C1,
/// DEL), line and paragraph separators and bidirectional overrides become a space, so an
/// upstream cannot forge a log line or reorder what an operator reads.
public enum LogText {
    public static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029
            || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v)
    }

    public static func clean(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars { out.append(isUnsafe(scalar) ? " " : scalar) }
        return String(out)
    }

    /// For a text log line: unsafe characters as `\u{…}` escapes, so nothing is lost.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) { out += "\\u{" + String(scalar.value, radix: 16) + "}" } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }
}
