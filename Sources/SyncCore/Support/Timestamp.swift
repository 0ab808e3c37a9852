import Foundation

/// RFC 3339 timestamps in UTC with millisecond precision, the API's only date format.
public enum Timestamp {
    /// `2026-11-24T22:33:38.123Z`.
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Parses RFC 3339 with or without fractional seconds; `nil` if malformed.
    public static func parse(_ string: String) -> Date? {
        if let d = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(string) { return d }
        return try? Date.ISO8601FormatStyle().parse(string)
    }
}
