import Foundation
import Testing
import SyncCore
import SyncStore
import TestSupport

/// Request budgets in the database (docs/queue.md, "Rate limits"): the same grants, waits and
/// closures on both stores.
@Suite("Store conformance: rate limits")
struct RateLimitConformanceTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    /// Requests granted when asking for `count` every `every` seconds for `seconds` from `start`.
    func grants(_ store: DatabaseStore, key: String, count: Int, limit: RateLimit, from start: Date, for seconds: Double,
                every step: Double) async throws -> Int {
        var granted = 0
        var t = start
        while t < start.addingTimeInterval(seconds) {
            if case .granted(let n) = try await store.takeTokens(key: key, count: count, limit: limit, now: t) { granted += n }
            t = t.addingTimeInterval(step)
        }
        return granted
    }

    @Test(arguments: StoreBackend.allCases)
    func aBudgetGrantsItsBurstThenItsRate(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        let limit = RateLimit(requestsPerSecond: 5, burst: 5, key: "k")
        #expect(try await store.takeTokens(key: "k", count: 5, limit: limit, now: t0) == .granted(5))
        guard case .wait(let wait) = try await store.takeTokens(key: "k", count: 1, limit: limit, now: t0) else {
            Issue.record("the burst is spent: it must wait")
            return
        }
        #expect(abs(wait - 0.2) < 0.001, "one request every 0.2 s: \(wait)")
        #expect(try await store.takeTokens(key: "k", count: 1, limit: limit, now: t0.addingTimeInterval(0.2)) == .granted(1))
        // Over ten seconds, however it is asked: at most the burst plus the rate.
        let granted = try await grants(store, key: "k", count: 3, limit: limit, from: t0.addingTimeInterval(0.2), for: 10, every: 0.05)
        #expect(granted <= 50 && granted >= 45, "\(granted)")
        // Asking for more than the burst gets the burst at most.
        #expect(try await store.takeTokens(key: "other", count: 1000, limit: RateLimit(requestsPerSecond: 1, burst: 3), now: t0) == .granted(3))
        // Hostile rates neither trap nor grant more than the burst.
        #expect(try await store.takeTokens(key: "tiny", count: 1, limit: RateLimit(requestsPerSecond: 1e-300, burst: 1), now: t0) == .granted(1))
        if case .wait(let w) = try await store.takeTokens(key: "tiny", count: 1, limit: RateLimit(requestsPerSecond: 1e-300, burst: 1), now: t0) {
            #expect(w >= 1e5)
        } else { Issue.record("a vanishing rate must wait") }
    }

    /// A budget follows its source's current limit: what a slower limit reserved (0.001/s
    /// took its one request and put the next 1,000 s away) does not outlive a PATCH to a faster
    /// one, and a sync handed back to wait for the slow budget is brought forward by the
    /// change (it sat queued for 1,000 s, with nothing showing why).
    @Test(arguments: StoreBackend.allCases)
    func aFasterLimitForgetsWhatASlowerOneReserved(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        let slow = RateLimit(requestsPerSecond: 0.001, burst: 1, key: "k")
        #expect(try await store.takeTokens(key: "k", count: 1, limit: slow, now: t0) == .granted(1))
        guard case .wait(let w) = try await store.takeTokens(key: "k", count: 1, limit: slow, now: t0.addingTimeInterval(1)), w > 900 else {
            Issue.record("the slow budget must make the next request wait")
            return
        }
        let fast = RateLimit(requestsPerSecond: 50, burst: 50, key: "k")
        // What was spent is not known, so the budget starts spent: requests go at the new
        // rate at once (not its burst), and never past it.
        guard case .wait(let first) = try await store.takeTokens(key: "k", count: 10, limit: fast, now: t0.addingTimeInterval(1)),
              first <= 0.21 else {
            Issue.record("under 50/s ten requests wait at most 0.2 s")
            return
        }
        let granted = try await grants(store, key: "k", count: 10, limit: fast, from: t0.addingTimeInterval(1), for: 2, every: 0.01)
        #expect(granted <= 100 && granted >= 90, "50/s for 2 s: \(granted)")

        var source = try await store.createSource(makeSource(name: "paced"))
        _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
        let now = Date()
        let claimed = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: now))
        _ = try await store.finish(claimed.lease, outcome: .released(reason: "waits for its budget", runAt: now.addingTimeInterval(1000)), now: now)
        #expect(try #require(try await store.nextRunAt()) > now.addingTimeInterval(900))
        source.rateLimit = fast
        source.updatedAt = now
        _ = try await store.updateSource(source)
        #expect(try #require(try await store.nextRunAt()) <= now.addingTimeInterval(1))
        #expect(try await store.claimNext(owner: "n", leaseSeconds: 30, now: now.addingTimeInterval(1))?.sync.id == claimed.sync.id)
    }

    /// Whenever a node's batch equals the burst (5/s burst 1, 10/2, 20/4, 0.6/s with the
    /// default burst), the first request of an idle key is granted at once, at today's Unix
    /// times and far later ones, and the key then grants at its rate: the comparison once
    /// lost its last bit to floating point near 2^31 and never granted.
    @Test(arguments: StoreBackend.allCases)
    func everyAcceptedRateGrantsAtItsRate(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        let limits: [(Double, Int)] = [(5.0, 1), (10, 2), (20, 4), (0.6, 1), (3, 3), (100_000, 100_000), (0.001, 1), (7, 1), (1.0 / 3, 1)]
        for (index, (rps, burst)) in limits.enumerated() {
            for (era, start) in [Date(), Date(timeIntervalSince1970: 1_796_327_809.943), Date(timeIntervalSince1970: 8_000_000_000.3)].enumerated() {
                let key = "k\(index)-\(era)", limit = RateLimit(requestsPerSecond: rps, burst: burst)
                let batch = burst
                #expect(try await store.takeTokens(key: key, count: batch, limit: limit, now: start) == .granted(batch), "\(rps)/\(burst) at \(start)")
                // Asked again once every interval for 20 intervals: granted every time.
                let interval = 1 / rps
                var granted = 0
                for step in 1...20 {
                    let at = start.addingTimeInterval(interval * Double(batch) * Double(step))
                    if case .granted(let n) = try await store.takeTokens(key: key, count: batch, limit: limit, now: at) { granted += n }
                }
                #expect(granted == 20 * batch, "\(rps)/\(burst) at \(start): \(granted)")
                // And never more than the burst ahead of the rate.
                let early = start.addingTimeInterval(interval * Double(batch) * 20)
                if case .wait(let w) = try await store.takeTokens(key: key, count: batch, limit: limit, now: early) {
                    #expect(w > 0 && w <= interval * Double(batch) + 0.001, "\(rps)/\(burst): \(w)")
                } else {
                    Issue.record("\(rps)/\(burst): a request beyond the burst must wait")
                }
            }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aClosedKeyGrantsNothingAndHoldsItsSyncsBack(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        var definition = makeSource()
        definition.rateLimit = RateLimit(requestsPerSecond: 10, burst: 10, key: "shared")
        let source = try await store.createSource(definition)
        let now = Date()
        let queued = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api, now: now)).sync
        let until = now.addingTimeInterval(30)
        try await store.closeKey("key:shared", until: until, now: now)
        try await store.closeKey("key:shared", until: now.addingTimeInterval(5), now: now)  // never shortened
        #expect(try await store.takeTokens(key: "key:shared", count: 1, limit: definition.rateLimit!, now: now) == .closed(until: Date(timeIntervalSince1970: until.timeIntervalSince1970)))
        #expect(abs((try await store.closedUntil(key: "key:shared", now: now)?.timeIntervalSince1970 ?? 0) - until.timeIntervalSince1970) < 0.001)
        #expect(try await store.closedUntil(key: "key:other", now: now) == nil)
        // Its queued sync is not claimable until the key reopens; the source shows when.
        #expect(try await store.claimNext(owner: "n", leaseSeconds: 30, now: now.addingTimeInterval(1)) == nil)
        #expect(try await store.summary(sourceID: source.id).rateLimitedUntil != nil)
        let claimed = try await store.claimNext(owner: "n", leaseSeconds: 30, now: until.addingTimeInterval(0.1))
        #expect(claimed?.sync.id == queued.id)
    }
}
