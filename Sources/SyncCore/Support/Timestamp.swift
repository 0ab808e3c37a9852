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

    /// Parses an RFC 3339 date-time (§5.6): `YYYY-MM-DDTHH:MM:SS`, an optional fraction,
    /// and `Z` or `±HH:MM` (`T` and `Z` in either case). Every field is checked, never rolled
    /// over: a day past its month's end (`2026-02-30`, `2025-02-29`), hour 24, minute or
    /// second 60 (leap seconds included), year 0000 and an offset past 23:59 are `nil`.
    public static func parse(_ string: String) -> Date? {
        let b = Array(string.utf8)
        guard b.count >= 20, b.count <= 64 else { return nil }
        func number(_ from: Int, _ width: Int) -> Int? {
            var v = 0
            for i in from..<from + width {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        guard let year = number(0, 4), b[4] == UInt8(ascii: "-"), let month = number(5, 2), b[7] == UInt8(ascii: "-"),
              let day = number(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
              let hour = number(11, 2), b[13] == UInt8(ascii: ":"), let minute = number(14, 2), b[16] == UInt8(ascii: ":"),
              let second = number(17, 2) else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard year >= 1, (1...12).contains(month), (1...monthDays[month - 1]).contains(day),
              hour <= 23, minute <= 59, second <= 59 else { return nil }
        var i = 19
        var fraction = 0.0
        if b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 48 && b[i] <= 57 {
                fraction += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        guard i < b.count else { return nil }
        var offset = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard b.count - i == 6, let h = number(i + 1, 2), b[i + 3] == UInt8(ascii: ":"), let m = number(i + 4, 2),
                  h <= 23, m <= 59 else { return nil }
            offset = (h * 60 + m) * 60 * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        default:
            return nil
        }
        guard i == b.count else { return nil }
        let seconds = days(fromCivil: year, month, day) * 86_400 + Int64(hour * 3600 + minute * 60 + second - offset)
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    /// Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
