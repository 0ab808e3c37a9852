import Foundation
import NIOHTTP1
import SyncCore

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
