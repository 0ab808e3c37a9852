import Foundation
import SyncCore

/// What asking a budget for requests came to.
public enum RateGrant: Sendable, Equatable {
    /// This many requests may go now.
    case granted(Int)
    /// None yet: ask again after this many seconds.
    case wait(Double)
    /// The upstream asked for no requests of this key until then.
    case closed(until: Date)
}

extension DatabaseStore: RateLimitStore {
    public func takeTokens(key: String, count: Int, limit: RateLimit, now: Date) async throws -> RateGrant {
        let t = now.timeIntervalSince1970
        let n = Double(max(1, min(count, limit.burst)))
        let interval = 1 / max(limit.requestsPerSecond, 0.000_001)
        // GCRA: n requests may go when max(tat, now) + n·interval − now <= burst·interval. It is
        // compared as `max(tat, now) − now <= (burst − n)·interval`: the left side is exactly 0
        // when the key is idle (no Unix time near 2^31 added and taken away again, which lost
        // the comparison whenever n = burst), the right side is computed from small numbers,
        // and `slack` covers what one subtraction at these magnitudes can round away.
        let headroom = Double(max(1, limit.burst)) * interval - n * interval
        let slack = 1e-4
        let greatest: StoreSQL = "\(sqlite: "MAX", postgres: "GREATEST")"
        for _ in 0..<2 {
            let granted = try await driver.execute("""
                UPDATE rate_limits SET tat = \(sql: greatest)(tat, \(t)) + \(n * interval)
                WHERE key = \(key) AND closed_until <= \(t) AND \(sql: greatest)(tat, \(t)) - \(t) <= \(headroom + slack)
                RETURNING tat
                """)
            if granted.first(0) != nil { return .granted(Int(n)) }
            guard let row = try await driver.read(["SELECT tat, closed_until FROM rate_limits WHERE key = \(key)"]).first(0) else {
                _ = try await driver.execute("INSERT INTO rate_limits (key) VALUES (\(key)) ON CONFLICT (key) DO NOTHING")
                continue
            }
            let closed = try row.double("closed_until")
            if closed > t { return .closed(until: Timestamp.clamped(Date(timeIntervalSince1970: closed))) }
            var tat = try row.double("tat")
            // No further ahead than this limit itself could have put it (`now + burst·interval`,
            // the budget spent): under one limit that never happens, and after a PATCH to a
            // faster limit what a slower one reserved (0.001/s: the next request 1,000 s away)
            // is forgotten at once, the budget starting spent at the new rate.
            let reach = Double(max(1, limit.burst)) * interval + slack
            if tat > t + reach {
                _ = try await driver.execute("UPDATE rate_limits SET tat = \(t + reach) WHERE key = \(key) AND tat > \(t + reach)")
                tat = t + reach
            }
            return .wait(max(0.001, (max(tat, t) - t) - headroom))
        }
        return .wait(0.01)
    }

    public func closedUntil(key: String, now: Date) async throws -> Date? {
        let rows = try await driver.read(["SELECT closed_until FROM rate_limits WHERE key = \(key) AND closed_until > \(now.timeIntervalSince1970)"])
        return try rows.first(0).map { Timestamp.clamped(Date(timeIntervalSince1970: try $0.double("closed_until"))) }
    }

    /// Closes the key until `until` (never shortening a closure), and moves the key's queued
    /// and retrying syncs to run no sooner: no node claims them while it is closed.
    public func closeKey(_ key: String, until: Date, now: Date) async throws {
        let u = Timestamp.clamped(until).timeIntervalSince1970
        guard u > now.timeIntervalSince1970 else { return }
        let greatest: StoreSQL = "\(sqlite: "MAX", postgres: "GREATEST")"
        try await driver.transact(StoreTransaction { _ in
            StoreDecision(writes: [
                StoreWrite("""
                    INSERT INTO rate_limits (key, closed_until) VALUES (\(key), \(u))
                    ON CONFLICT (key) DO UPDATE SET closed_until = \(sql: greatest)(rate_limits.closed_until, excluded.closed_until)
                    """),
                StoreWrite("""
                    UPDATE syncs SET run_at = \(u) WHERE rate_key = \(key) AND status \(in: StoreRules.runnableStatuses) AND run_at < \(u)
                    """),
            ]) { _, _ in () }
        })
    }
}
