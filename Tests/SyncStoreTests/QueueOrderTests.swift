import Foundation
import Testing
import SyncCore
import SyncStore
import TestSupport

/// The claim order (docs/queue.md): higher priority first, first come first served within
/// one, and aging: a waiting sync gains a priority level a minute, so none waits forever.
@Suite("Store conformance: fair priorities")
struct QueueOrderTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func enqueue(_ store: DatabaseStore, priority: Int, at time: Date) async throws -> Sync {
        let source = try await store.createSource(makeSource())
        return try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: priority, trigger: .api, now: time)).sync
    }

    @Test(arguments: StoreBackend.allCases)
    func higherPriorityFirstThenFirstComeFirstServed(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        // Queued within a few seconds of each other: aging moves nothing yet.
        let a = try await enqueue(store, priority: 0, at: t0)
        let b = try await enqueue(store, priority: 5, at: t0.addingTimeInterval(1))
        let c = try await enqueue(store, priority: 0, at: t0.addingTimeInterval(2))
        let d = try await enqueue(store, priority: 5, at: t0.addingTimeInterval(3))
        let e = try await enqueue(store, priority: -3, at: t0.addingTimeInterval(0.5))
        var order: [String] = []
        while let claimed = try await store.claimNext(owner: "n", leaseSeconds: 30, now: t0.addingTimeInterval(10)) {
            order.append(claimed.sync.id)
        }
        #expect(order == [b.id, d.id, a.id, c.id, e.id])
    }

    /// A priority-0 sync behind a stream of priority-10 syncs, one queued and claimed every
    /// 30 s by one worker: it starts once it has waited 10 levels × 60 s, not never.
    @Test(arguments: StoreBackend.allCases)
    func aLowPrioritySyncStartsWithinTheBoundBehindAStreamOfUrgentOnes(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        let low = try await enqueue(store, priority: 0, at: t0)
        var startedAfter: Double?
        for step in 1...40 {
            let now = t0.addingTimeInterval(Double(step) * 30)
            _ = try await enqueue(store, priority: 10, at: now)
            let claimed = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: now))
            _ = try await store.finish(claimed.lease, outcome: .completed, now: now)
            if claimed.sync.id == low.id {
                startedAfter = now.timeIntervalSince(t0)
                break
            }
        }
        // The bound: (10 − 0) × 60 s; the first claim after it takes the low sync.
        let waited = try #require(startedAfter, "the low-priority sync never started")
        #expect(waited >= 600 && waited <= 630, "started after \(waited) s")
    }
}
