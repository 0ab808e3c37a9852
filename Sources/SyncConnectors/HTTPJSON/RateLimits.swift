import Foundation
import NIOHTTP1
import SyncCore

// Rate limits in the connector: the gate a request waits at, and the upstream's own word on
// them (the headers that close a key, `Retry-After`).

/// What lets a request go to an upstream: the request budget of the source's key, shared by
/// every node, and closed when the upstream asks for a pause (docs/queue.md, "Rate limits").
/// The engine gives each attempt one; a source without it sends freely.
public protocol RequestGate: Sendable {
    /// Waits until a request may go. Throws ``GateClosed`` when the key is closed for longer
    /// than `maxWait` seconds: the caller should hand its work back rather than hold a worker.
    func acquire(maxWait: Double) async throws
    /// The upstream asked for no requests of this key until `until`.
    func close(until: Date) async
}

/// The key is closed until `until`, longer than the caller can wait.
public struct GateClosed: Error, Sendable, CustomStringConvertible {
    public var until: Date
    /// Why, when it is not the upstream's pause (a rate limit whose next grant is far off).
    public var reason: String?
    public init(until: Date, reason: String? = nil) {
        self.until = until
        self.reason = reason
    }
    public var description: String { reason ?? "the upstream asked for no requests until \(Timestamp.format(until))" }
}

extension UpstreamClient {
    /// When a response asks for no more requests until later: a `429` or `503` with a
    /// `Retry-After`, or `X-RateLimit-Remaining: 0` / `RateLimit-Remaining: 0` with a reset
    /// header (`X-RateLimit-Reset`, `RateLimit-Reset`; ``resetTime(_:now:)``). Hostile values
    /// are bounded like `Retry-After` (7 days) or ignored; `nil` when none.
    public static func closeSignal(status: Int, headers: HTTPHeaders, now: Date = Date()) -> Date? {
        if status == 429 || status == 503, let seconds = retryAfter(headers.first(name: "retry-after"), now: now) {
            return now.addingTimeInterval(seconds)
        }
        let remaining = headers.first(name: "x-ratelimit-remaining") ?? headers.first(name: "ratelimit-remaining")
        guard remaining?.trimmingCharacters(in: .whitespaces) == "0",
              let reset = headers.first(name: "x-ratelimit-reset") ?? headers.first(name: "ratelimit-reset") else { return nil }
        return resetTime(reset, now: now)
    }

    /// A rate-limit reset: digits with an optional fraction (`2`, `2.5`, `1796327809.943`; no
    /// sign, exponent, hex or word). A value of at least 10^9 is a Unix time (GitHub sends
    /// times, others milliseconds after the point), anything smaller seconds from now. The
    /// result is at most 7 days away; `nil` when it is not after `now` or not a number.
    static func resetTime(_ text: String, now: Date) -> Date? {
        let bytes = Array(text.trimmingCharacters(in: .whitespaces).utf8)
        guard !bytes.isEmpty, bytes.count <= 64 else { return nil }
        let point = bytes.firstIndex(of: UInt8(ascii: "."))
        let whole = bytes[..<(point ?? bytes.endIndex)]
        let fraction = point.map { bytes[($0 + 1)...] } ?? []
        func digits(_ part: ArraySlice<UInt8>) -> Bool { part.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }
        guard !whole.isEmpty, digits(whole), point == nil || (!fraction.isEmpty && digits(fraction)),
              let value = Double(String(decoding: bytes, as: UTF8.self)), value.isFinite else { return nil }
        let latest = now.addingTimeInterval(retryAfterCeiling)
        let at = value >= 1_000_000_000 ? Date(timeIntervalSince1970: value) : now.addingTimeInterval(value)
        return at > now ? min(at, latest) : nil
    }
}

/// `Retry-After`, read by ``closeSignal(status:headers:now:)`` above and by the retry policy
/// (a 429 without a closure still waits what it asks).
extension UpstreamClient {
    /// The longest `Retry-After` believed: 7 days, the largest `retry.max_delay_seconds`.
    public static let retryAfterCeiling: Double = 604_800

    /// `Retry-After` as seconds in `0...retryAfterCeiling`: delta-seconds or an HTTP-date
    /// (RFC 9110 §10.2.3). Hostile values are clamped or ignored, never trusted: `inf`,
    /// `nan`, negative numbers and text are ignored (`nil`); `99999999999999999999` and a
    /// date in the year 9999 become the ceiling.
    public static func retryAfter(_ value: String?, now: Date = Date()) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty, value.utf8.count <= 64 else { return nil }
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        let bytes = Array(value.utf8)
        if bytes.allSatisfy(isDigit) {
            // Digits only, however many: leading zeros count for nothing, and no conversion
            // that can overflow (more than 7 significant digits is past the ceiling anyway).
            let significant = bytes.drop { $0 == UInt8(ascii: "0") }
            guard significant.count <= 7 else { return retryAfterCeiling }
            return min(retryAfterCeiling, Double(significant.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }))
        }
        // Not RFC 9110's form, but some upstreams send "1.5": digits, a point, digits. No
        // sign, exponent, hex or word ("0x3", "1e1", "inf" are not delays).
        if let point = bytes.firstIndex(of: UInt8(ascii: ".")), point > 0, point < bytes.count - 1,
           bytes[..<point].allSatisfy(isDigit), bytes[(point + 1)...].allSatisfy(isDigit) {
            guard bytes[..<point].drop(while: { $0 == UInt8(ascii: "0") }).count <= 7 else { return retryAfterCeiling }
            return Double(value).map { min(retryAfterCeiling, $0) }
        }
        guard let date = httpDate(value) else { return nil }
        return min(retryAfterCeiling, max(0, date.timeIntervalSince(now)))
    }

    /// An HTTP-date in any of RFC 9110 §5.6.7's three forms: IMF-fixdate
    /// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and
    /// asctime (`Sun Nov  6 08:49:37 1994`, the day padded with a space).
    static func httpDate(_ text: String) -> Date? {
        let squeezed = text.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            // RFC 850's two-digit year: within 50 years of now (RFC 9110 §5.6.7).
            formatter.twoDigitStartDate = Date().addingTimeInterval(-50 * 365.25 * 86_400)
            if let date = formatter.date(from: squeezed) { return date }
        }
        return nil
    }
}
