/// A JSON number kept exactly, as decimal digits and a power of ten.
///
/// Upstream numbers are not `Double`s: snowflake ids, nanosecond epochs and 20-digit
/// cursors lose digits in a 64-bit float (`1732600000123456900` becomes
/// `1.732600000123457e+18`). Record keys and incremental cursors are compared and
/// written from this exact form, never from a float.
///
/// The value is `digits × 10^exponent`, with `digits` stripped of leading and trailing
/// zeros, so every spelling of one number (`1`, `1.0`, `10e-1`, `0.1e1`) has one form,
/// and ``canonical`` writes it one way.
public struct ExactNumber: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let isNegative: Bool
    /// Significant decimal digits (ASCII), no leading or trailing zeros; empty for zero.
    public let digits: [UInt8]
    public let exponent: Int

    /// The largest exponent accepted; `1e1000001` is refused rather than expanded.
    public static let exponentLimit = 1_000_000

    /// Parses an RFC 8259 number literal (`-0.5e3`); `nil` for anything else, or an
    /// exponent beyond ``exponentLimit``.
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        var i = 0
        let negative = i < bytes.count && bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        let intStart = i
        while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        let intPart = bytes[intStart..<i]
        guard !intPart.isEmpty, intPart.count == 1 || intPart.first != UInt8(ascii: "0") else { return nil }
        var fracPart: ArraySlice<UInt8> = []
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
            fracPart = bytes[start..<i]
            guard !fracPart.isEmpty else { return nil }
        }
        var exp = 0
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            var expNegative = false
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
                expNegative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            let start = i
            while i < bytes.count, isDigit(bytes[i]) {
                exp = exp * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                // Stop before overflow; the limit check below refuses it.
                if exp > Self.exponentLimit * 10 { return nil }
                i += 1
            }
            guard i > start else { return nil }
            if expNegative { exp = -exp }
        }
        guard i == bytes.count else { return nil }
        var all = Array(intPart) + Array(fracPart)
        var exponent = exp - fracPart.count
        let leading = all.prefix { $0 == UInt8(ascii: "0") }.count
        all.removeFirst(leading)
        let trailing = all.reversed().prefix { $0 == UInt8(ascii: "0") }.count
        all.removeLast(trailing)
        exponent += trailing
        if all.isEmpty {
            self.init(isNegative: false, digits: [], exponent: 0)
            return
        }
        guard abs(exponent + all.count) <= Self.exponentLimit else { return nil }
        self.init(isNegative: negative, digits: all, exponent: exponent)
    }

    private init(isNegative: Bool, digits: [UInt8], exponent: Int) {
        self.isNegative = isNegative
        self.digits = digits
        self.exponent = exponent
    }

    public var isZero: Bool { digits.isEmpty }

    /// The canonical text of a number literal (`nil` if `text` is not one): the same as
    /// `ExactNumber(text)?.canonical`, without building the value for the common case of a
    /// plain integer (`42`, `-7`), which is already canonical. Keys are made per record.
    public static func canonicalText(of text: Substring) -> String? {
        let utf8 = text.utf8
        var i = utf8.startIndex
        if i != utf8.endIndex, utf8[i] == UInt8(ascii: "-") { i = utf8.index(after: i) }
        guard i != utf8.endIndex else { return nil }
        let first = utf8[i]
        let plain = first >= UInt8(ascii: "1") && first <= UInt8(ascii: "9")
            && utf8[i...].allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        if plain { return String(text) }
        return ExactNumber(text)?.canonical
    }

    /// Whether `text` is an RFC 8259 number literal, checked without allocating.
    public static func isLiteral(_ text: Substring) -> Bool {
        let utf8 = text.utf8
        guard let first = utf8.first, first == UInt8(ascii: "-") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else {
            return false
        }
        return ExactNumber(text) != nil
    }

    /// The one spelling of this number: integers in plain digits (`10`, not `1e1` or
    /// `10.0`), decimals with a point (`0.25`), and exponent notation only where plain
    /// digits would run past 40 zeros (`1e400`, `2.5e-60`).
    public var canonical: String {
        if digits.isEmpty { return "0" }
        let d = String(decoding: digits, as: UTF8.self)
        let sign = isNegative ? "-" : ""
        let n = digits.count
        if exponent >= 0 && exponent <= 40 {
            return sign + d + String(repeating: "0", count: exponent)
        }
        if exponent < 0 && -exponent < n {
            let point = d.index(d.startIndex, offsetBy: n + exponent)
            return sign + d[..<point] + "." + d[point...]
        }
        if exponent < 0 && -exponent - n <= 40 {
            return sign + "0." + String(repeating: "0", count: -exponent - n) + d
        }
        let rest = d.dropFirst()
        return sign + String(d.prefix(1)) + (rest.isEmpty ? "" : "." + rest) + "e" + String(n - 1 + exponent)
    }

    public var description: String { canonical }

    /// The `Double` nearest to this number.
    public var doubleValue: Double { Double(canonical) ?? (isNegative ? -.infinity : .infinity) }

    /// Whether a `Double` holds this number exactly (so it survives a float round trip).
    public var isExactDouble: Bool {
        let d = doubleValue
        guard d.isFinite else { return false }
        return ExactNumber(String(d).replacingOccurrences(of: "e+", with: "e")) == self
    }

    /// The number as a `JSONValue`: a JSON number where a `Double` holds it exactly, else its
    /// canonical digits as a JSON string (sent back unchanged, compared as a number).
    public var jsonValue: JSONValue { isExactDouble ? .number(doubleValue) : .string(canonical) }

    public static func < (a: ExactNumber, b: ExactNumber) -> Bool {
        if a.isNegative != b.isNegative { return a.isNegative }
        return a.isNegative ? magnitudeLess(b, a) : magnitudeLess(a, b)
    }

    /// |a| < |b|.
    private static func magnitudeLess(_ a: ExactNumber, _ b: ExactNumber) -> Bool {
        if a.isZero || b.isZero { return !b.isZero && a.isZero }
        // The position of the most significant digit decides first.
        let ma = a.digits.count + a.exponent, mb = b.digits.count + b.exponent
        if ma != mb { return ma < mb }
        for i in 0..<max(a.digits.count, b.digits.count) {
            let x = i < a.digits.count ? a.digits[i] : UInt8(ascii: "0")
            let y = i < b.digits.count ? b.digits[i] : UInt8(ascii: "0")
            if x != y { return x < y }
        }
        return false
    }
}

extension JSONValue {
    /// This value as an exact number: a JSON number, or a string holding one.
    public var exactNumber: ExactNumber? {
        switch self {
        case .number(let n): n.isFinite ? ExactNumber(String(n).replacingOccurrences(of: "e+", with: "e")) : nil
        case .string(let s): ExactNumber(s)
        default: nil
        }
    }
}
