import Foundation
import Synchronization
import SyncConnectors
import SyncCore
import SyncStore

/// This node's gates onto the cluster's request budgets (docs/queue.md, "Rate limits"), one
/// per key, shared by every attempt on the node that draws on it.
final class RequestBudgets: Sendable {
    let store: any RateLimitStore
    /// By the key's bytes: two keys that are canonically equivalent strings are two budgets
    /// in the database, so they are two gates here.
    private let gates = Mutex<[BytewiseString: KeyGate]>([:])

    init(store: any RateLimitStore) { self.store = store }

    /// The gate of `source`'s key, with the source's current limit; an upstream's pause is
    /// believed up to the source's `retry.max_delay_seconds` (a hostile `Retry-After` of
    /// years closes nothing for years).
    /// Made for every claimed sync, so it costs nothing until the attempt's first request:
    /// most kinds (and every synthetic sync) never send one.
    func gate(for source: LiveSource) -> any RequestGate {
        AttemptGate(budgets: self, live: source)
    }

    func keyGate(for source: Source) -> KeyGate {
        let key = BytewiseString(source.rateKey)
        return gates.withLock { map in
            if let gate = map[key], gate.limit == source.rateLimit { return gate }
            let gate = KeyGate(store: store, key: key.text, limit: source.rateLimit)
            // Bounded: keys of sources long gone are forgotten with the rest.
            if map.count >= 10_000 { map.removeAll() }
            map[key] = gate
            return gate
        }
    }
}

/// A key's gate as one attempt uses it, found on first use; pauses the upstream asks for are
/// cut to the source's `retry.max_delay_seconds`.
struct AttemptGate: RequestGate {
    let budgets: RequestBudgets
    let live: LiveSource

    func acquire(maxWait: Double) async throws { try await budgets.keyGate(for: live.current).acquire(maxWait: maxWait) }

    func close(until: Date) async {
        let source = live.current
        let longest = source.retry.maxDelaySeconds
        await budgets.keyGate(for: source).close(until: min(until, Date().addingTimeInterval(max(0, longest.isFinite ? longest : 0))))
    }
}

/// One key's budget as one node sees it. Requests are granted by the database in small
/// batches (about a quarter second's worth, at most the burst) so that a busy key costs a
/// few statements a second, not one per request; a batch not spent within a quarter second
/// is dropped, so the limit holds however the nodes share it. A key without a rate limit
/// only checks, at most every quarter second, whether an upstream closed it.
public final class KeyGate: RequestGate {
    let store: any RateLimitStore
    let key: String
    let limit: RateLimit?
    static let batchLife: Duration = .milliseconds(250)

    private struct State {
        var tokens = 0
        var tokensUntil = ContinuousClock.now
        var closedUntil: Date?
        var checkedAt: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    public init(store: any RateLimitStore, key: String, limit: RateLimit?) {
        self.store = store
        self.key = key
        self.limit = limit
    }

    /// How many requests one grant asks for.
    var batch: Int {
        guard let limit else { return 1 }
        return max(1, min(limit.burst, Int(clamping: limit.requestsPerSecond / 4, to: 1...100_000)))
    }

    /// The longest a worker waits for its key's next grant; a later one hands the sync back.
    public static let longestBudgetWait: Double = 10

    public func acquire(maxWait: Double) async throws {
        while true {
            try Task.checkCancellation()
            let now = Date(), clock = ContinuousClock.now
            // Closed (as this node last heard): wait for it, or give the work back.
            if let until = state.withLock({ $0.closedUntil }), until > now {
                let wait = until.timeIntervalSince(now)
                if wait > maxWait { throw GateClosed(until: until) }
                try await Task.sleep(for: .clamped(seconds: wait + 0.001, upTo: 60))
                continue
            }
            guard let limit else {
                let due = state.withLock { s in s.checkedAt.map { clock - $0 >= Self.batchLife } ?? true }
                if !due { return }
                let until = try await store.closedUntil(key: key, now: now)
                state.withLock { $0.closedUntil = until; $0.checkedAt = clock }
                if until == nil { return }
                continue
            }
            let spent = state.withLock { s -> Bool in
                guard s.tokens > 0, clock < s.tokensUntil else { return false }
                s.tokens -= 1
                return true
            }
            if spent { return }
            switch try await store.takeTokens(key: key, count: batch, limit: limit, now: now) {
            case .granted(let n):
                state.withLock { $0.tokens = n - 1; $0.tokensUntil = clock + Self.batchLife }
                return
            case .wait(let seconds):
                // A next grant further off than a worker may wait for (a rate of one request in
                // minutes) hands the sync back to run then: a slow key costs its own syncs, not
                // the node's workers.
                if seconds > Self.longestBudgetWait {
                    let until = now.addingTimeInterval(min(seconds, UpstreamClient.retryAfterCeiling))
                    throw GateClosed(until: until, reason: "the rate limit of key \(key) grants its next request at \(Timestamp.format(until))")
                }
                // At most a second per sleep (it loops): no configured rate turns into a trap here.
                try await Task.sleep(for: .clamped(seconds: seconds.isNaN ? 1 : max(seconds, 0.001), upTo: 1))
            case .closed(let until):
                state.withLock { $0.closedUntil = until }
            }
        }
    }

    public func close(until: Date) async {
        state.withLock { s in
            s.closedUntil = max(s.closedUntil ?? until, until)
            s.tokens = 0
        }
        // A database that cannot be reached now loses only the other nodes' knowledge of the
        // closure; this node keeps it.
        try? await store.closeKey(key, until: until, now: Date())
    }
}

/// A running attempt's source as far as its requests are concerned: the claimed definition,
/// with the `rate_limit` (and key) a PATCH has given it since, so a running sync follows a
/// new limit within a second or so (``SyncRunner``'s monitor refreshes it).
final class LiveSource: Sendable {
    private let value: Mutex<Source>
    init(_ source: Source) { value = Mutex(source) }
    var current: Source { value.withLock { $0 } }
    /// Takes a stored `rate_limit` (its key included).
    func update(limit: RateLimit?) {
        value.withLock { source in
            if source.rateLimit != limit { source.rateLimit = limit }
        }
    }
}
