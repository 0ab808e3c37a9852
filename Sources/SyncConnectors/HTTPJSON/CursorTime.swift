import Foundation
import SyncCore

/// How an incremental cursor that is a time is sent to the upstream (`incremental.cursor_format`).
public enum CursorFormat: String, Sendable, Equatable, CaseIterable {
    /// `2026-05-28T10:00:00Z` (with `.mmm` when the time has milliseconds), always UTC.
    case rfc3339
    /// Whole seconds since 1970 (rounded down).
    case epochSeconds = "epoch_seconds"
    /// Whole milliseconds since 1970 (rounded down).
    case epochMillis = "epoch_millis"
}

/// Times as upstreams write them in records: RFC 3339 strings (also Salesforce's `+0000`
/// offset without a colon, and a space for the `T`), and epoch numbers — seconds, or
/// milliseconds when the magnitude says so (past 10^11, the year 5138 in seconds).
public enum CursorTime {
    /// The instant a cursor value names, in milliseconds since 1970; `nil` when it names none.
    public static func milliseconds(of value: JSONValue) -> Int64? {
        switch value {
        case .string(let text):
            if let number = ExactNumber(text) { return milliseconds(ofEpoch: number) }
            return parse(text)
        case .number:
            return value.exactNumber.flatMap(milliseconds(ofEpoch:))
        default:
            return nil
        }
    }

    static let millisThreshold = ExactNumber("100000000000")!
    /// Years 0001 to 9999 in milliseconds: no time outside can be formatted or compared.
    static let range: ClosedRange<Int64> = -62_135_596_800_000...253_402_300_799_999

    static func milliseconds(ofEpoch number: ExactNumber) -> Int64? {
        let magnitude = number.isNegative ? ExactNumber(number.canonical.dropFirst()) ?? number : number
        let inMillis = magnitude > millisThreshold
        // Digits only, never through a Double: 1e400 or a 40-digit number is refused, not trapped.
        guard let whole = number.truncatedInteger(scale: inMillis ? 0 : 3), range.contains(whole) else { return nil }
        return whole
    }

    /// An RFC 3339 date-time, leniently: `+0000` as well as `+00:00`, a space for `T`.
    static func parse(_ text: String) -> Int64? {
        var b = Array(text.utf8)
        guard b.count >= 20, b.count <= 64 else { return nil }
        if b[10] == UInt8(ascii: " ") { b[10] = UInt8(ascii: "T") }
        // `±HHMM` at the end: insert the colon RFC 3339 wants.
        let n = b.count
        if n >= 5, b[n - 5] == UInt8(ascii: "+") || b[n - 5] == UInt8(ascii: "-"), b[(n - 4)...].allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            b.insert(UInt8(ascii: ":"), at: n - 2)
        }
        guard let date = Timestamp.parse(String(decoding: b, as: UTF8.self)) else { return nil }
        let ms = (date.timeIntervalSince1970 * 1000).rounded(.down)
        guard ms.isFinite, ms >= Double(range.lowerBound), ms <= Double(range.upperBound) else { return nil }
        return Int64(ms)
    }

    /// `milliseconds` written as `format` asks, as the JSON value that goes in a query
    /// parameter or a body (a number for the epoch formats).
    public static func format(_ milliseconds: Int64, as format: CursorFormat) -> JSONValue {
        let ms = min(max(milliseconds, range.lowerBound), range.upperBound)
        func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : (a - b + 1) / b }
        switch format {
        case .epochSeconds: return .number(Double(floorDiv(ms, 1000)))
        case .epochMillis: return .number(Double(ms))
        case .rfc3339:
            let text = Timestamp.format(Date(timeIntervalSince1970: Double(ms) / 1000))
            // `.000Z` says nothing a second-precision upstream needs; keep real milliseconds.
            return .string(text.hasSuffix(".000Z") ? String(text.dropLast(5)) + "Z" : text)
        }
    }
}

extension ExactNumber {
    /// The integer part of this number times 10^`scale`, if it fits an `Int64`.
    func truncatedInteger(scale: Int) -> Int64? {
        // digits × 10^(exponent + scale), fraction dropped.
        let shift = exponent + scale
        let kept = digits.count + min(shift, 0)
        guard kept + max(shift, 0) <= 18 else { return nil }
        guard kept > 0 else { return 0 }
        var value: Int64 = 0
        for d in digits.prefix(kept) { value = value * 10 + Int64(d &- UInt8(ascii: "0")) }
        if shift > 0 { for _ in 0..<shift { value *= 10 } }
        return isNegative ? -value : value
    }
}
