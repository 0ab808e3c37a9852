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
        let seconds = totalMs >= 0 ? totalMs / 1000 : (totalMs - 999) / 1000
        let ms = Int(totalMs - seconds * 1000)
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civil(fromDays: days)
        // 24 ASCII bytes written in place: this runs twice per record on a records page.
        return String(unsafeUninitializedCapacity: 24) { buffer in
            func put(_ value: Int, at offset: Int, width: Int) {
                var v = value
                for i in stride(from: offset + width - 1, through: offset, by: -1) {
                    buffer[i] = UInt8(truncatingIfNeeded: 48 + v % 10)
                    v /= 10
                }
            }
            put(year, at: 0, width: 4); buffer[4] = UInt8(ascii: "-")
            put(month, at: 5, width: 2); buffer[7] = UInt8(ascii: "-")
            put(day, at: 8, width: 2); buffer[10] = UInt8(ascii: "T")
            put(secondOfDay / 3600, at: 11, width: 2); buffer[13] = UInt8(ascii: ":")
            put(secondOfDay / 60 % 60, at: 14, width: 2); buffer[16] = UInt8(ascii: ":")
            put(secondOfDay % 60, at: 17, width: 2); buffer[19] = UInt8(ascii: ".")
            put(ms, at: 20, width: 3); buffer[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    /// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
    /// `civil_from_days`, exact for every day ``clamped(_:)`` lets through).
    static func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (Int(yearOfEra + era * 400 + (month <= 2 ? 1 : 0)), Int(month), Int(day))
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
