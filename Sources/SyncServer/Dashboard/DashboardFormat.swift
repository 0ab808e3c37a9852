import Foundation
import SyncCore

/// How values read on a page: the API's JSON made into what templates render, times
/// relative to now, durations and counts for people.
enum DashboardFormat {
    /// A JSON value as a template value: objects as dictionaries, numbers as text (whole
    /// numbers without `.0`), `null` left out (a missing key is false in a template).
    static func value(_ json: JSONValue) -> Any? {
        switch json {
        case .null: return nil
        case .bool(let b): return b
        case .number(let n): return number(n)
        case .string(let s): return s
        case .array(let a): return a.compactMap(value)
        case .object(let o): return o.compactMapValues(value)
        }
    }

    static func object(_ json: JSONValue) -> [String: Any] { value(json) as? [String: Any] ?? [:] }

    static func number(_ n: Double) -> String {
        guard n.isFinite else { return "–" }
        if n == n.rounded(), abs(n) < 1e15 { return count(Int(n)) }
        return String(format: "%.2f", n)
    }

    /// `12,345`: thousands grouped, the same on every machine.
    static func count(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    /// Pretty, key-sorted JSON for `<pre>` blocks (configs as the API shows them: secrets `***`).
    static func pretty(_ json: JSONValue) -> String {
        String(decoding: JSONWriter.prettyBytes(json), as: UTF8.self)
    }

    static func pretty(bytes: [UInt8]) -> String {
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else { return String(decoding: bytes, as: UTF8.self) }
        return pretty(json)
    }

    /// `2026-11-26 14:03:07 UTC`
    static func time(_ date: Date?) -> String? {
        guard let date else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d UTC", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    /// `3 min ago`, `in 20 s`.
    static func relative(_ date: Date?, now: Date) -> String? {
        guard let date else { return nil }
        let delta = date.timeIntervalSince(now)
        let text = duration(abs(delta))
        if abs(delta) < 1 { return "now" }
        return delta < 0 ? "\(text) ago" : "in \(text)"
    }

    /// `850 ms`, `12 s`, `4 min 5 s`, `3 h 20 min`, `2 d 4 h`.
    static func duration(_ seconds: Double?) -> String {
        // From stored times: a value past a thousand years is shown as such, never converted.
        guard let seconds, seconds.isFinite, seconds >= 0 else { return "–" }
        if seconds >= 31_536_000_000 { return "over 1000 years" }
        if seconds < 1 { return "\(Int((seconds * 1000).rounded())) ms" }
        if seconds < 60 { return seconds < 10 ? String(format: "%.1f s", seconds) : "\(Int(seconds)) s" }
        let s = Int(seconds)
        if s < 3600 { return s % 60 == 0 ? "\(s / 60) min" : "\(s / 60) min \(s % 60) s" }
        if s < 86400 { return (s % 3600) / 60 == 0 ? "\(s / 3600) h" : "\(s / 3600) h \((s % 3600) / 60) min" }
        return (s % 86400) / 3600 == 0 ? "\(s / 86400) d" : "\(s / 86400) d \((s % 86400) / 3600) h"
    }

    /// The badge class of a status or health word (`ok`, `warn`, `bad`, `info`, `muted`).
    static func tone(_ word: String) -> String {
        switch word {
        case "completed", "ok", "healthy": return "ok"
        case "failed", "unhealthy", "failing": return "bad"
        case "retrying", "degraded", "stale", "paused", "draining": return "warn"
        case "running", "queued": return "info"
        default: return "muted"
        }
    }
}
