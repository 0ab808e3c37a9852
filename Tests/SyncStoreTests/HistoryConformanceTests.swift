import Foundation
import Testing
import SyncCore
import SyncStore
import TestSupport

/// Statistics and retention, the same figures and the same deletions on every backend.
@Suite("Store conformance: statistics and retention")
struct HistoryConformanceTests {
    let now = Date()

    func withStore(_ backend: StoreBackend, _ body: (DatabaseStore) async throws -> Void) async throws {
        let (store, cleanup) = try await backend.makeStore(connections: 8)
        defer { cleanup() }
        try await body(store)
    }

    /// One sync of `source` that starts at `start`, runs `seconds` and ends with `outcome`,
    /// having read `records` new records (keys after `firstKey`).
    @discardableResult
    func sync(_ store: DatabaseStore, _ source: Source, start: Date, seconds: Double, outcome: AttemptOutcome = .completed,
              records: Int = 0, firstKey: Int = 0, idempotencyKey: String? = nil) async throws -> Sync {
        let queued = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .incremental, priority: 0, trigger: .api,
                                                            idempotencyKey: idempotencyKey, now: start)).sync
        let claimed = try #require(try await store.claimNext(owner: "n", leaseSeconds: 1e6, now: start))
        #expect(claimed.sync.id == queued.id)
        let end = start.addingTimeInterval(seconds)
        if outcome == .completed {
            let page = PageCommit(pageNumber: 1, records: makeRecords(firstKey..<(firstKey + records)),
                                  recordErrors: records > 0 ? [RecordError(page: 1, recordKey: "bad", message: "too big")] : [],
                                  bytesRead: records * 10, checkpoint: nil)
            return try await store.completeWithFinalPage(page, lease: claimed.lease, now: end)
        }
        return try await store.finish(claimed.lease, outcome: outcome, now: end)
    }

    /// Known syncs: source A completed 20 syncs two hours ago that ran 1…20 s and read i²
    /// records each (i records/s), and one 100 s sync two days ago; B failed once and was
    /// cancelled once ten minutes ago; C has a sync queued now.
    @Test(arguments: StoreBackend.allCases)
    func statisticsOfKnownSyncs(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            // Nothing yet: no rate, no percentiles, zero counts.
            let empty = try await store.statistics(window: 86_400, now: now)
            #expect(empty.successRate == nil && empty.duration == nil && empty.recordsPerSecond == nil && empty.bySource.isEmpty)
            #expect(empty.counts == Dictionary(uniqueKeysWithValues: SyncStatus.allCases.map { ($0, 0) }))
            #expect(empty.queueDepth == 0 && empty.oldestQueuedAt == nil)
            let a = try await store.createSource(makeSource(name: "a"))
            let b = try await store.createSource(makeSource(name: "b"))
            let c = try await store.createSource(makeSource(name: "c"))
            try await sync(store, a, start: now.addingTimeInterval(-2 * 86_400), seconds: 100, records: 5, firstKey: 100_000)
            var key = 0
            for i in 1...20 {
                try await sync(store, a, start: now.addingTimeInterval(-7_200 + Double(i) * 60), seconds: Double(i), records: i * i, firstKey: key)
                key += i * i
            }
            try await sync(store, b, start: now.addingTimeInterval(-600), seconds: 3, outcome: .failed(SyncError(.upstreamAuthFailed, "401", retryable: false)))
            try await sync(store, b, start: now.addingTimeInterval(-500), seconds: 4, outcome: .cancelled)
            let queued = try await store.enqueue(EnqueueRequest(sourceID: c.id, mode: .full, priority: 0, trigger: .api, now: now.addingTimeInterval(-30))).sync

            let day = try await store.statistics(window: 86_400, now: now)
            #expect(day.counts == [.queued: 1, .running: 0, .retrying: 0, .completed: 20, .failed: 1, .cancelled: 1])
            #expect(day.successRate == 20.0 / 21.0)
            #expect(day.duration == .init(p50: 10, p95: 19, max: 20))
            // A record error is a record read: sync i read i² + 1 records in i seconds.
            let rates = SyncStatistics.Percentiles(p50: 101.0 / 10, p95: 362.0 / 19, max: 401.0 / 20)
            #expect(day.recordsPerSecond == rates)
            #expect(day.records == .init(read: 2_890, created: 2_870, updated: 0, unchanged: 0, deleted: 0, failed: 20))
            #expect(day.queueDepth == 1)
            #expect(abs((day.oldestQueuedAt ?? .distantPast).timeIntervalSince(queued.queuedAt)) < 0.001)
            #expect(day.bySource.map(\.source.name) == ["b", "a"])
            #expect(day.bySource.map(\.failed) == [1, 0])
            #expect(day.bySource.map(\.completed) == [0, 20])
            #expect(day.bySource.map(\.cancelled) == [1, 0])
            #expect(day.bySource[0].lastSuccessAt == nil)
            let lastEnd = now.addingTimeInterval(-7_200 + 20 * 60 + 20)
            #expect(abs((day.bySource[1].lastSuccessAt ?? .distantPast).timeIntervalSince(lastEnd)) < 0.001)

            let hour = try await store.statistics(window: 3_600, now: now)
            #expect(hour.counts[.completed] == 0 && hour.counts[.failed] == 1 && hour.counts[.cancelled] == 1)
            #expect(hour.successRate == 0)
            #expect(hour.duration == nil && hour.recordsPerSecond == nil)
            #expect(hour.bySource.map(\.source.name) == ["b"])

            // Seven days take in the 100 s sync: 21 values, p50 at rank 11, p95 at rank 20.
            let week = try await store.statistics(window: 7 * 86_400, now: now)
            #expect(week.counts[.completed] == 21)
            #expect(week.duration == .init(p50: 11, p95: 20, max: 100))
            #expect(week.records.read == 2_896)
        }
    }

    /// Retention deletes old terminal syncs with their attempts, record errors and
    /// idempotency keys; keeps the newest N per source, every active sync and every record.
    @Test(arguments: StoreBackend.allCases)
    func pruningKeepsTheNewestAndEveryActiveSync(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let a = try await store.createSource(makeSource(name: "a"))
            let b = try await store.createSource(makeSource(name: "b"))
            let c = try await store.createSource(makeSource(name: "c"))
            let old = now.addingTimeInterval(-40 * 86_400)
            var aSyncs: [Sync] = []
            for i in 0..<25 {
                aSyncs.append(try await sync(store, a, start: old.addingTimeInterval(Double(i) * 60), seconds: 1, records: 1, firstKey: i,
                                             idempotencyKey: i == 0 ? "first" : nil))
            }
            for i in 0..<3 { aSyncs.append(try await sync(store, a, start: now.addingTimeInterval(Double(i - 10) * 60), seconds: 1)) }
            for i in 0..<5 { try await sync(store, b, start: old.addingTimeInterval(Double(i) * 60), seconds: 1, outcome: .cancelled) }
            // An active sync that started long ago is never pruned.
            _ = try await store.enqueue(EnqueueRequest(sourceID: c.id, mode: .full, priority: 0, trigger: .api, now: old))
            let running = try #require(try await store.claimNext(owner: "n", leaseSeconds: 1e6, now: old))

            // Three pruners at once, in batches of three: eight of A's old syncs go, once.
            let policy = RetentionPolicy(olderThanSeconds: 30 * 86_400, keepLastPerSource: 20, batchSize: 3)
            let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<3 { group.addTask { try await store.prune(policy, now: now) } }
                return try await group.reduce(0, +)
            }
            #expect(counts == 8)
            for (i, sync) in aSyncs.enumerated() {
                #expect((try await store.sync(id: sync.id) != nil) == (i >= 8), "A's sync \(i)")
            }
            #expect(try await store.recordErrors(syncID: aSyncs[0].id, limit: 10, after: nil).isEmpty)
            #expect(try await store.recordErrors(syncID: aSyncs[8].id, limit: 10, after: nil).count == 1)
            // The records stay; the pruned sync that wrote them is no longer named.
            let records = try await store.records(sourceID: a.id, limit: 100, after: nil, includeDeleted: true)
            #expect(records.count == 25)
            #expect(records.first?.syncID == nil)
            #expect(records.last?.syncID == aSyncs[24].id)
            // The idempotency key of a pruned sync is gone: the key queues a new sync.
            let reused = try await store.enqueue(EnqueueRequest(sourceID: a.id, mode: .incremental, priority: 0, trigger: .api,
                                                                idempotencyKey: "first", now: now))
            guard case .created = reused else { Issue.record("the pruned sync's key was replayed"); return }
            _ = try await store.requestCancel(syncID: reused.sync.id, now: now)

            // That cancelled sync is A's 29th finished one: one more old sync leaves the newest 20.
            let again = try await store.prune(policy, now: now)
            #expect(again == 1)
            #expect(try await store.sync(id: aSyncs[8].id) == nil)
            #expect(try await store.prune(policy, now: now) == 0)
            // Keep none: every old terminal sync goes; the running one and the recent ones stay.
            let all = try await store.prune(RetentionPolicy(olderThanSeconds: 30 * 86_400, keepLastPerSource: 0), now: now)
            #expect(all == 21)
            #expect(try await store.sync(id: running.sync.id)?.status == .running)
            #expect(try await store.listSyncs(SyncFilter(sourceID: a.id), limit: 100, before: nil).count == 4)
        }
    }
}
