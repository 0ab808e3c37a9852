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
    /// header (`X-RateLimit-Reset`, `RateLimit-Reset`: seconds from now, or a Unix time when
    /// it reads as one). Hostile values are clamped like `Retry-After`; `nil` when none.
    public static func closeSignal(status: Int, headers: HTTPHeaders, now: Date = Date()) -> Date? {
        if status == 429 || status == 503, let seconds = retryAfter(headers.first(name: "retry-after"), now: now) {
            return now.addingTimeInterval(seconds)
        }
        let remaining = headers.first(name: "x-ratelimit-remaining") ?? headers.first(name: "ratelimit-remaining")
        guard remaining?.trimmingCharacters(in: .whitespaces) == "0",
              let reset = headers.first(name: "x-ratelimit-reset") ?? headers.first(name: "ratelimit-reset"),
              let seconds = retryAfter(reset, now: now) else { return nil }
        // A value past 2001 in seconds since 1970 is a time, not a wait (GitHub sends times).
        if seconds >= 1_000_000_000 && seconds < retryAfterCeiling {
            return Date(timeIntervalSince1970: seconds) > now ? Date(timeIntervalSince1970: seconds) : nil
        }
        if reset.utf8.count >= 10, reset.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // A Unix time too long for retryAfter's digit rule: read it as one, bounded.
            guard let epoch = Double(reset), epoch.isFinite else { return nil }
            let at = Date(timeIntervalSince1970: min(epoch, now.timeIntervalSince1970 + retryAfterCeiling))
            return at > now ? at : nil
        }
        return seconds > 0 ? now.addingTimeInterval(seconds) : nil
    }
}
