import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// RFC 3339 timestamps in UTC with millisecond precision, the API's only date format.
public enum Timestamp {
    /// `2026-11-24T22:33:38.123Z`, rounded to the nearest millisecond.
    ///
    /// Formatted by hand: Foundation's ISO 8601 style truncates the binary fraction
    /// (`.123` becomes `.122`) and is slow on a path that renders every sync.
    public static func format(_ date: Date) -> String {
        let totalMs = Int64((clamped(date).timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(totalMs >= 0 ? totalMs / 1000 : (totalMs - 999) / 1000)
        let ms = Int(totalMs - Int64(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
    }

    /// The earliest and latest instants RFC 3339 can write (years 0001 to 9999).
    public static let earliest = Date(timeIntervalSince1970: -62_135_596_800)
    public static let latest = Date(timeIntervalSince1970: 253_402_300_799.999)

    /// `date` moved into ``earliest``...``latest`` (NaN becomes 1970): a stored value from
    /// outside, however absurd, never traps a reader or a timer.
    public static func clamped(_ date: Date) -> Date {
        let t = date.timeIntervalSince1970
        guard !t.isNaN else { return Date(timeIntervalSince1970: 0) }
        return min(max(date, earliest), latest)
    }

    /// Parses RFC 3339 with or without fractional seconds; `nil` if malformed.
    public static func parse(_ string: String) -> Date? {
        if let d = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(string) { return d }
        return try? Date.ISO8601FormatStyle().parse(string)
    }
}
