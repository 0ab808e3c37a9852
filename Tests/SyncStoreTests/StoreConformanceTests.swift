import Foundation
import Testing
import SyncCore
import SyncStore
import TestSupport

/// One suite, every backend: the store's guarantees (docs/architecture.md invariants 1–4), tried by breaking them.
@Suite("Store conformance")
struct StoreConformanceTests {
    func withStore(_ backend: StoreBackend, connections: Int = 8, _ body: (any SyncStore) async throws -> Void) async throws {
        let (store, cleanup) = try await backend.makeStore(connections: connections)
        defer { cleanup() }
        try await body(store)
    }

    func enqueue(_ store: any SyncStore, _ source: Source, mode: SyncMode = .full, priority: Int = 0,
                 key: String? = nil, fingerprint: String = "") async throws -> Sync {
        try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: mode, priority: priority, trigger: .api,
                                               idempotencyKey: key, requestFingerprint: fingerprint)).sync
    }

    func claim(_ store: any SyncStore, owner: String = "node-a", lease: Double = 30, now: Date = Date()) async throws -> ClaimedSync {
        try #require(try await store.claimNext(owner: owner, leaseSeconds: lease, now: now))
    }

    /// The one wake path: every write that makes a sync runnable publishes one `wake` when it
    /// commits (an enqueue, a retry, a hand-back, a rescue), a cancel of a running sync one
    /// `cancel`, and a refused write nothing. On PostgreSQL the events come back through
    /// LISTEN on another connection, as another node would hear them.
    @Test(arguments: StoreBackend.allCases)
    func eachRunnableWritePublishesOneEvent(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let heard = EventLog()
            let listener = Task { try await store.listen { heard.append($0) } }
            defer { listener.cancel() }
            // PostgreSQL's listener says `wake` once when it starts listening (anything queued
            // before it is found by polling): wait for it, then forget it.
            if backend == .postgres { _ = try await eventually { heard.events.isEmpty ? nil : true } }
            heard.clear()
            func expectEvents(_ expected: [StoreEvent], _ what: Comment) async throws {
                _ = try? await eventually(timeout: .seconds(2)) { heard.events.count >= expected.count ? true : nil }
                try await Task.sleep(for: .milliseconds(100))  // nothing more arrives
                #expect(heard.events == expected, what)
                heard.clear()
            }
            let source = try await store.createSource(makeSource())
            try await expectEvents([], "creating a source")
            let sync = try await enqueue(store, source)
            try await expectEvents([.wake], "an enqueue")
            await #expect(throws: SyncStoreError.self) { _ = try await enqueue(store, source) }
            try await expectEvents([], "a refused enqueue")
            let claimed = try await claim(store)
            _ = try await store.requestCancel(syncID: sync.id, now: Date())
            try await expectEvents([.cancelRequested(syncID: sync.id)], "a cancel of a running sync")
            _ = try await store.finish(claimed.lease, outcome: .cancelled, now: Date())
            try await expectEvents([], "the end of an attempt")
            _ = try await store.retry(syncID: sync.id, now: Date())
            try await expectEvents([.wake], "a retry")
            let again = try await claim(store)
            _ = try await store.finish(again.lease, outcome: .released(reason: "shutdown"), now: Date())
            try await expectEvents([.wake], "a hand-back")
            let third = try await claim(store, lease: 1)
            #expect(try await store.rescueExpiredLeases(now: Date().addingTimeInterval(5)) == [third.sync.id])
            try await expectEvents([.wake], "a rescue")
        }
    }

    /// A source's summary: its latest sync, its latest finished one and its last success,
    /// the same read one source at a time or many at once.
    @Test(arguments: StoreBackend.allCases)
    func summariesNameTheLatestTheLatestFinishedAndTheLastSuccess(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let never = try await store.createSource(makeSource(name: "never"))
            let mixed = try await store.createSource(makeSource(name: "mixed"))
            let quiet = try await store.createSource(makeSource(name: "quiet"))
            // mixed: completed, then failed a second later, then one queued.
            _ = try await enqueue(store, mixed)
            var claimed = try await claim(store)
            let completed = try await store.finish(claimed.lease, outcome: .completed, now: Date().addingTimeInterval(1))
            _ = try await enqueue(store, mixed)
            claimed = try await claim(store, now: Date().addingTimeInterval(1))
            let failed = try await store.finish(claimed.lease, outcome: .failed(SyncError(.internalError, "boom")), now: Date().addingTimeInterval(2))
            let queued = try await enqueue(store, mixed)
            _ = try await enqueue(store, never)

            let all = try await store.summaries(sourceIDs: [never.id, mixed.id, quiet.id, "src_nothing"])
            #expect(all[mixed.id]?.latest?.id == queued.id)
            #expect(all[mixed.id]?.latestFinished?.id == failed.id)
            #expect(all[mixed.id]?.latestFinished?.status == .failed)
            let lastSuccess = try #require(all[mixed.id]?.lastCompletedAt)
            #expect(abs(lastSuccess.timeIntervalSince(try #require(completed.finishedAt))) < 0.001)
            #expect(all[never.id]?.latest?.status == .queued)
            #expect(all[never.id]?.latestFinished == nil && all[never.id]?.lastCompletedAt == nil)
            #expect(all[quiet.id]?.latest == nil)
            #expect(all["src_nothing"]?.latest == nil)
            let one = try await store.summary(sourceID: mixed.id)
            #expect(one.latest?.id == queued.id && one.latestFinished?.id == failed.id)
            #expect(one.latest?.status == .queued && one.latest?.finishedAt == nil && one.latestFinished?.finishedAt != nil)
            #expect(try await store.summaries(sourceIDs: []).isEmpty)
            // The same summary read with the source, by id or by name, and in a page.
            for key in [mixed.id, mixed.name] {
                let view = try #require(try await store.sourceView(idOrName: key))
                #expect(view.source.id == mixed.id && view.summary.latest?.id == queued.id)
                #expect(view.summary.latestFinished?.id == failed.id && view.summary.lastCompletedAt == lastSuccess)
            }
            #expect(try await store.sourceView(idOrName: "src_nothing") == nil)
            let page = try await store.sourceViews(limit: 10, after: nil)
            #expect(page.map(\.source.id) == [never.id, mixed.id, quiet.id].sorted())
            for view in page {
                #expect(view.summary.latest?.id == all[view.source.id]?.latest?.id)
                #expect(view.summary.latestFinished?.id == all[view.source.id]?.latestFinished?.id)
            }
            #expect(try await store.sourceViews(limit: 1, after: page[0].source.id).map(\.source.id) == [page[1].source.id])
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func migrationsAreIdempotent(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let version = try await store.schemaVersion()
            #expect(version >= 1)
            let source = try await store.createSource(makeSource())
            let sync = try await enqueue(store, source)
            try await store.migrate()
            try await store.migrate()
            // Same version, same data: a second migrate applied nothing and dropped nothing.
            #expect(try await store.schemaVersion() == version)
            #expect(try await store.source(idOrName: source.id)?.name == source.name)
            #expect(try await store.sync(id: sync.id)?.status == .queued)
            #expect(try await store.listSyncs(SyncFilter(), limit: 10, before: nil).count == 1)
        }
    }

    /// A retry time from outside (an upstream's `Retry-After`, an older version's stored
    /// `Infinity`) is stored clamped and reads back as a time every reader can format.
    @Test(arguments: StoreBackend.allCases)
    func anAbsurdRetryTimeIsStoredClampedAndReadsBack(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            for absurd in [Double.infinity, 1e15, -Double.infinity] {
                let source = try await store.createSource(makeSource())
                _ = try await enqueue(store, source)
                let claimed = try await claim(store)
                let error = SyncError(.upstreamRateLimited, "HTTP 429 from upstream", retryable: true)
                let sync = try await store.finish(claimed.lease, outcome: .retrying(error, nextRetryAt: Date(timeIntervalSince1970: absurd)), now: Date())
                let next = try #require(sync.nextRetryAt)
                #expect(next.timeIntervalSince1970 >= -62_135_596_800 && next.timeIntervalSince1970 < 253_402_300_800, "\(absurd)")
                #expect(Timestamp.parse(Timestamp.format(next)) != nil)
                let read = try #require(try await store.sync(id: sync.id))
                #expect(read.nextRetryAt == next)
                _ = try await store.nextRunAt()
                _ = try await store.listSyncs(SyncFilter(sourceID: source.id), limit: 10, before: nil)
                _ = try await store.requestCancel(syncID: sync.id, now: Date())
            }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func fiftyConcurrentTriggersQueueExactlyOneSync(_ backend: StoreBackend) async throws {
        try await withStore(backend, connections: 50) { store in
            let source = try await store.createSource(makeSource())
            // The pool's 50 connections are opened first: opening them all at once inside the
            // triggers could pass the 5 s connection deadline on a machine loaded by the rest of
            // the suite (the triggers themselves are what this test races).
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<50 { group.addTask { _ = try? await store.sourceViews(limit: 1, after: nil) } }
            }
            let results = await withTaskGroup(of: Result<Sync, any Error>.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        do { return .success(try await enqueue(store, source)) } catch { return .failure(error) }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let winners = results.compactMap { try? $0.get() }
            #expect(winners.count == 1)
            let winner = try #require(winners.first)
            for case .failure(let error) in results {
                #expect(error as? SyncStoreError == .syncAlreadyActive(activeSyncID: winner.id, status: .queued))
            }
            #expect(try await store.listSyncs(SyncFilter(sourceID: source.id), limit: 100, before: nil).count == 1)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aTerminalSyncFreesTheSourceForTheNext(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            let first = try await enqueue(store, source)
            _ = try await store.requestCancel(syncID: first.id, now: Date())
            let second = try await enqueue(store, source)
            #expect(second.id != first.id)
            #expect(second.status == .queued)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func idempotencyKeyReplaysTheOriginalAndRejectsADifferentBody(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            let a = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api, idempotencyKey: "k1", requestFingerprint: "f"))
            let b = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api, idempotencyKey: "k1", requestFingerprint: "f"))
            guard case .created = a, case .replayed = b else { Issue.record("expected created then replayed"); return }
            #expect(a.sync.id == b.sync.id)
            await #expect(throws: SyncStoreError.idempotencyKeyReused) {
                try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api, idempotencyKey: "k1", requestFingerprint: "other"))
            }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func minTriggerIntervalIsEnforced(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource(minTriggerIntervalSeconds: 60))
            let first = try await enqueue(store, source)
            _ = try await store.requestCancel(syncID: first.id, now: Date())
            do {
                _ = try await enqueue(store, source)
                Issue.record("expected rate_limited")
            } catch SyncStoreError.rateLimited(let retryAfter) {
                #expect(retryAfter > 55 && retryAfter <= 60)
            }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func schedulesQueueOnceWhenDueAndNeverBesideAnActiveSync(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            var scheduled = makeSource()
            scheduled.schedule = Schedule(everySeconds: 60)
            let source = try await store.createSource(scheduled)
            _ = try await store.createSource(makeSource())
            let t0 = Date()
            let first = try await store.enqueueDueSchedules(now: t0)
            #expect(first.count == 1)
            #expect(try await store.sync(id: first[0])?.trigger == .schedule)
            #expect(try await store.enqueueDueSchedules(now: t0.addingTimeInterval(120)).isEmpty)
            _ = try await store.requestCancel(syncID: first[0], now: t0)
            #expect(try await store.enqueueDueSchedules(now: t0.addingTimeInterval(30)).isEmpty)
            let again = try await store.enqueueDueSchedules(now: t0.addingTimeInterval(61))
            #expect(again.count == 1)
            #expect(try await store.sync(id: again[0])?.sourceID == source.id)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func claimTakesHighestPriorityThenOldest(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let low = try await enqueue(store, try await store.createSource(makeSource()), priority: 0)
            let high = try await enqueue(store, try await store.createSource(makeSource()), priority: 5)
            let low2 = try await enqueue(store, try await store.createSource(makeSource()), priority: 0)
            let order = [try await claim(store), try await claim(store), try await claim(store)].map(\.sync.id)
            #expect(order == [high.id, low.id, low2.id])
            #expect(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()) == nil)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func pagesCountCreatedUpdatedUnchangedAndPersistProgress(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            _ = try await enqueue(store, source)
            let c = try await claim(store)
            #expect(c.sync.status == .running && c.sync.attempt == 1)
            var p = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<10), bytesRead: 100, checkpoint: .object(["offset": .number(10)])), lease: c.lease, now: Date())
            #expect(p.recordsCreated == 10 && p.pages == 1 && p.bytesRead == 100)
            // The same keys again in this sync (3 of them changed) and 2 new ones: a record counts
            // once per sync, so only the new ones count; the later versions are stored.
            let page2 = makeRecords(0..<7) + makeRecords(7..<10, version: 1) + makeRecords(10..<12)
            p = try await store.commitPage(PageCommit(pageNumber: 2, records: page2, recordErrors: [RecordError(page: 2, recordKey: nil, message: "no id")], bytesRead: 50, checkpoint: .null), lease: c.lease, now: Date())
            #expect(p.recordsCreated == 12 && p.recordsUpdated == 0 && p.recordsUnchanged == 0 && p.recordsFailed == 1)
            // Read: the 12 distinct keys and the record error; the 7 + 3 repeated keys are not read again.
            #expect(p.recordsRead == 12 + 1 && p.pages == 2 && p.bytesRead == 150)
            #expect(try await store.record(sourceID: source.id, key: makeRecords(8..<9)[0].key)?.data == makeRecords(8..<9, version: 1)[0].data)
            let stored = try #require(try await store.sync(id: c.sync.id))
            #expect(stored.progress == p)
            #expect(stored.checkpoint == .null)
            let done = try await store.finish(c.lease, outcome: .completed, now: Date())
            #expect(done.status == .completed)
            #expect(done.result?.recordsCreated == 12)
            #expect(try await store.recordErrors(syncID: c.sync.id, limit: 10, after: nil).map(\.error.message) == ["no id"])

            // The next sync: 3 changed, 7 unchanged, 2 new; each counted once although page 2 repeats some.
            _ = try await enqueue(store, source)
            let next = try await claim(store)
            let again = makeRecords(0..<7) + makeRecords(7..<10, version: 2) + makeRecords(12..<14)
            p = try await store.commitPage(PageCommit(pageNumber: 1, records: again, bytesRead: 1, checkpoint: .object(["offset": .number(1)])), lease: next.lease, now: Date())
            #expect(p.recordsCreated == 2 && p.recordsUpdated == 3 && p.recordsUnchanged == 7)
            p = try await store.commitPage(PageCommit(pageNumber: 2, records: makeRecords(0..<2) + makeRecords(9..<10, version: 3), bytesRead: 1, checkpoint: .null), lease: next.lease, now: Date())
            #expect(p.recordsCreated == 2 && p.recordsUpdated == 3 && p.recordsUnchanged == 7)
            #expect(p.recordsRead == 12, "read \(p.recordsRead): a key on two pages is read once")
            #expect(try await store.record(sourceID: source.id, key: makeRecords(9..<10)[0].key)?.data == makeRecords(9..<10, version: 3)[0].data)
            let finished = try await store.finish(next.lease, outcome: .completed, now: Date())
            #expect(finished.result?.recordsDeleted == 2) // 10 and 11, not in this full sync
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aRetriedPageCountsOnceAndAPageAfterAGapIsRefused(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            _ = try await enqueue(store, source)
            let c = try await claim(store)
            let page1 = PageCommit(pageNumber: 1, records: makeRecords(0..<5), bytesRead: 10, checkpoint: .object(["offset": .number(5)]))
            _ = try await store.commitPage(page1, lease: c.lease, now: Date())
            // The acknowledgement of the first commit was lost; the worker sends it again.
            let again = try await store.commitPage(page1, lease: c.lease, now: Date())
            #expect(again.pages == 1 && again.recordsCreated == 5 && again.recordsRead == 5 && again.bytesRead == 10)
            // Page 3 after page 1: page 2's commit was lost by the database; writing past the gap is refused.
            await #expect(throws: SyncStoreError.checkpointBehind(storedPages: 1, page: 3)) {
                try await store.commitPage(PageCommit(pageNumber: 3, records: makeRecords(10..<15), bytesRead: 1, checkpoint: .null), lease: c.lease, now: Date())
            }
            #expect(try await store.records(sourceID: source.id, limit: 100, after: nil, includeDeleted: true).count == 5)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func concurrentClaimsFromManyWorkersNeverHandOutASyncTwice(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            var expected: Set<String> = []
            for _ in 0..<20 {
                let source = try await store.createSource(makeSource())
                expected.insert(try await enqueue(store, source).id)
            }
            let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var mine: [String] = []
                        while let c = try await store.claimNext(owner: "w\(worker)", leaseSeconds: 30, now: Date()) { mine.append(c.sync.id) }
                        return mine
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(claimed.count == 20)
            #expect(Set(claimed) == expected)
            // Every node's rescuer at once, after the leases expired: each sync is rescued exactly once.
            let later = Date().addingTimeInterval(60)
            let rescued = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<4 { group.addTask { try await store.rescueExpiredLeases(now: later) } }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(rescued.count == 20 && Set(rescued) == expected)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func healthNamesFailingAndStaleSources(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            func run(_ source: Source, _ outcome: AttemptOutcome, at time: Date) async throws {
                _ = try await enqueue(store, source)
                let c = try await claim(store)
                _ = try await store.finish(c.lease, outcome: outcome, now: time)
            }
            let now = Date()
            let failing = try await store.createSource(makeSource(name: "a-failing"))
            var scheduled = makeSource(name: "b-stale")
            scheduled.schedule = Schedule(everySeconds: 10)
            let stale = try await store.createSource(scheduled)
            var fresh = makeSource(name: "c-fresh")
            fresh.schedule = Schedule(everySeconds: 1000)
            let ok = try await store.createSource(fresh)
            _ = try await store.createSource(makeSource(name: "d-never"))
            try await run(failing, .completed, at: now.addingTimeInterval(-50))
            try await run(failing, .failed(SyncError(.upstreamClientError, "404")), at: now.addingTimeInterval(-40))
            try await run(stale, .completed, at: now.addingTimeInterval(-100))
            try await run(ok, .completed, at: now.addingTimeInterval(-100))
            let snapshot = try await store.healthSnapshot(now: now)
            #expect(snapshot.failingSources == [SourceRef(id: failing.id, name: "a-failing")])
            #expect(snapshot.staleSources == [SourceRef(id: stale.id, name: "b-stale")])
            // A newer completed sync heals the failing source.
            try await run(failing, .completed, at: now.addingTimeInterval(-1))
            #expect(try await store.healthSnapshot(now: now).failingSources.isEmpty)
        }
    }

    /// Source health is one rule (``SourceHealth/evaluate(latestFinished:lastCompletedAt:schedule:now:)``),
    /// stated in SQL for the health snapshot: over every kind of history around the stale
    /// threshold, the snapshot names exactly the sources the API calls failing and stale.
    @Test(arguments: StoreBackend.allCases)
    func theSnapshotAndTheAPIShareOneHealthRule(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let now = Date()
            let interval = 100.0, threshold = SourceHealth.staleAfterIntervals * interval
            let histories: [[(AttemptOutcome, Double)]] = [
                [], [(.completed, 10)], [(.completed, threshold + 10)], [(.completed, threshold - 10)],
                [(.failed(SyncError(.upstreamClientError, "404")), 10)],
                [(.completed, threshold + 50), (.failed(SyncError(.upstreamClientError, "404")), 10)],
                [(.completed, threshold + 50), (.cancelled, 10)], [(.completed, threshold - 50), (.cancelled, 10)],
                [(.cancelled, 10)], [(.failed(SyncError(.upstreamClientError, "404")), 50), (.completed, 10)],
            ]
            var expected: [SourceHealth: Set<String>] = [:]
            for (index, history) in histories.enumerated() {
                for scheduled in [false, true] {
                    var definition = makeSource(name: "h\(index)-\(scheduled)")
                    if scheduled { definition.schedule = Schedule(everySeconds: interval) }
                    let source = try await store.createSource(definition)
                    for (outcome, ago) in history {
                        _ = try await enqueue(store, source)
                        let c = try await claim(store)
                        _ = try await store.finish(c.lease, outcome: outcome, now: now.addingTimeInterval(-ago))
                    }
                    let summary = try await store.summary(sourceID: source.id)
                    expected[summary.health(schedule: source.schedule, now: now), default: []].insert(source.id)
                }
            }
            let snapshot = try await store.healthSnapshot(now: now)
            #expect(Set(snapshot.failingSources.map(\.id)) == expected[.failing] ?? [])
            #expect(Set(snapshot.staleSources.map(\.id)) == expected[.stale] ?? [])
            #expect((expected[.stale] ?? []).count >= 3 && (expected[.failing] ?? []).count >= 4, "the matrix reaches both")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func nodesRegisterHeartbeatAndLeave(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let start = Date(timeIntervalSince1970: 1_800_000_000)
            try await store.registerNode(NodeInfo(id: "a", role: "all", workers: 4, startedAt: start, heartbeatAt: start))
            try await store.registerNode(NodeInfo(id: "b", role: "api", workers: 0, startedAt: start, heartbeatAt: start))
            try await store.heartbeatNode(NodeInfo(id: "a", role: "all", workers: 4, startedAt: start, heartbeatAt: start), now: start.addingTimeInterval(5))
            var nodes = try await store.healthSnapshot(now: start).nodes
            #expect(nodes.map(\.id) == ["a", "b"])
            #expect(nodes[0].heartbeatAt == start.addingTimeInterval(5) && nodes[0].startedAt == start)
            try await store.removeNode(id: "b")
            nodes = try await store.healthSnapshot(now: start).nodes
            #expect(nodes.map(\.id) == ["a"])
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aStaleLeaseCannotCommitHeartbeatOrFinish(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            _ = try await enqueue(store, source)
            let a = try await claim(store, owner: "node-a", lease: 5)
            _ = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<5), bytesRead: 1, checkpoint: .object(["offset": .number(5)])), lease: a.lease, now: Date())
            // node-a pauses past its lease; the rescuer hands the sync to node-b.
            let later = Date().addingTimeInterval(60)
            #expect(try await store.rescueExpiredLeases(now: later) == [a.sync.id])
            let b = try await claim(store, owner: "node-b", now: later)
            #expect(b.sync.id == a.sync.id && b.lease.attempt == 2)
            #expect(b.sync.checkpoint == .object(["offset": .number(5)]))
            await #expect(throws: SyncStoreError.leaseLost) {
                try await store.commitPage(PageCommit(pageNumber: 2, records: makeRecords(5..<10), bytesRead: 1, checkpoint: .null), lease: a.lease, now: Date())
            }
            await #expect(throws: SyncStoreError.leaseLost) { try await store.heartbeat(a.lease, leaseSeconds: 5, now: Date()) }
            await #expect(throws: SyncStoreError.leaseLost) { try await store.finish(a.lease, outcome: .completed, now: Date()) }
            let s = try #require(try await store.sync(id: a.sync.id))
            #expect(s.status == .running && s.leaseOwner == "node-b" && s.progress.recordsCreated == 5)
            #expect(try await store.records(sourceID: source.id, limit: 100, after: nil, includeDeleted: true).count == 5)
            #expect(s.attempts.map(\.status) == [.queued, .running])
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func cancelIsImmediateWhenWaitingAndFlaggedWhenRunning(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let s1 = try await store.createSource(makeSource())
            let queued = try await enqueue(store, s1)
            let cancelled = try await store.requestCancel(syncID: queued.id, now: Date())
            #expect(cancelled.status == .cancelled && cancelled.finishedAt != nil)
            #expect(try await store.requestCancel(syncID: queued.id, now: Date()).status == .cancelled)

            let s2 = try await store.createSource(makeSource())
            _ = try await enqueue(store, s2)
            let c = try await claim(store)
            let flagged = try await store.requestCancel(syncID: c.sync.id, now: Date())
            #expect(flagged.status == .running && flagged.cancelRequested)
            #expect(try await store.isCancelRequested(c.lease))
            #expect(try await store.heartbeat(c.lease, leaseSeconds: 30, now: Date()))
            let done = try await store.finish(c.lease, outcome: .cancelled, now: Date())
            #expect(done.status == .cancelled)

            let s3 = try await store.createSource(makeSource())
            _ = try await enqueue(store, s3)
            let c3 = try await claim(store)
            _ = try await store.finish(c3.lease, outcome: .completed, now: Date())
            await #expect(throws: SyncStoreError.invalidState(current: .completed, message: "A completed sync cannot be cancelled.")) {
                try await store.requestCancel(syncID: c3.sync.id, now: Date())
            }
            await #expect(throws: SyncStoreError.notFound("sync nope")) { try await store.requestCancel(syncID: "nope", now: Date()) }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aRescuedSyncWithACancelRequestEndsCancelled(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            _ = try await enqueue(store, source)
            let c = try await claim(store, lease: 1)
            _ = try await store.requestCancel(syncID: c.sync.id, now: Date())
            #expect(try await store.rescueExpiredLeases(now: Date().addingTimeInterval(5)) == [c.sync.id])
            #expect(try await store.sync(id: c.sync.id)?.status == .cancelled)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func retryingWaitsAndManualRetryResetsTheBudgetAndKeepsProgress(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource(retry: RetryPolicy(maxAttempts: 2, initialDelaySeconds: 1, maxDelaySeconds: 1, multiplier: 1)))
            _ = try await enqueue(store, source)
            let c1 = try await claim(store)
            _ = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<5), bytesRead: 1, checkpoint: .object(["offset": .number(5)])), lease: c1.lease, now: Date())
            let err = SyncError(.upstreamUnavailable, "HTTP 503", httpStatus: 503)
            let next = Date().addingTimeInterval(60)
            let retrying = try await store.finish(c1.lease, outcome: .retrying(err, nextRetryAt: next), now: Date())
            #expect(retrying.status == .retrying && retrying.failedAttempts == 1 && retrying.error == err)
            #expect(abs((retrying.nextRetryAt ?? .distantPast).timeIntervalSince(next)) < 0.01)
            // Not runnable before next_retry_at.
            #expect(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()) == nil)
            await #expect(throws: SyncStoreError.self) { try await store.retry(syncID: retrying.id, now: Date()) }
            let c2 = try await claim(store, now: next.addingTimeInterval(1))
            #expect(c2.sync.attempt == 2)
            let failed = try await store.finish(c2.lease, outcome: .failed(err), now: Date())
            #expect(failed.status == .failed && failed.attempts.count == 2 && failed.attempts.allSatisfy { $0.error == err })
            let again = try await store.retry(syncID: failed.id, now: Date())
            #expect(again.status == .queued && again.trigger == .retry && again.failedAttempts == 0 && again.error == nil)
            #expect(again.progress.recordsCreated == 5 && again.checkpoint == .object(["offset": .number(5)]))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func manualRetryObeysTheOneActiveSyncRule(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            let first = try await enqueue(store, source)
            _ = try await store.requestCancel(syncID: first.id, now: Date())
            let second = try await enqueue(store, source)
            await #expect(throws: SyncStoreError.syncAlreadyActive(activeSyncID: second.id, status: .queued)) {
                try await store.retry(syncID: first.id, now: Date())
            }
            await #expect(throws: SyncStoreError.invalidState(current: .queued, message: "Only failed or cancelled syncs can be retried.")) {
                try await store.retry(syncID: second.id, now: Date())
            }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func fullModeDeletesUnseenRecordsOnlyOnCompletion(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            _ = try await enqueue(store, source)
            let c1 = try await claim(store)
            _ = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<10), bytesRead: 1, checkpoint: .null), lease: c1.lease, now: Date())
            _ = try await store.finish(c1.lease, outcome: .completed, now: Date())

            // An incomplete full sync that saw only 0..<4 deletes nothing.
            _ = try await enqueue(store, source)
            let c2 = try await claim(store)
            _ = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<4), bytesRead: 1, checkpoint: .object(["offset": .number(4)])), lease: c2.lease, now: Date())
            _ = try await store.finish(c2.lease, outcome: .failed(SyncError(.upstreamClientError, "404")), now: Date())
            #expect(try await store.records(sourceID: source.id, limit: 100, after: nil, includeDeleted: false).count == 10)

            // A complete full sync that saw 0..<7 deletes exactly 7..<10.
            _ = try await enqueue(store, source)
            let c3 = try await claim(store)
            _ = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<7), bytesRead: 1, checkpoint: .null), lease: c3.lease, now: Date())
            let done = try await store.finish(c3.lease, outcome: .completed, now: Date())
            #expect(done.result?.recordsDeleted == 3)
            let live = try await store.records(sourceID: source.id, limit: 100, after: nil, includeDeleted: false)
            #expect(live.map(\.key) == makeRecords(0..<7).map(\.key))
            let all = try await store.records(sourceID: source.id, limit: 100, after: nil, includeDeleted: true)
            #expect(all.filter { $0.deletedAt != nil }.map(\.key) == makeRecords(7..<10).map(\.key))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func completingWithTheFinalPageCountsLikeCommitThenFinish(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            _ = try await enqueue(store, source)
            let c1 = try await claim(store)
            let first = try await store.completeWithFinalPage(
                PageCommit(pageNumber: 1, records: makeRecords(0..<10), bytesRead: 7, checkpoint: .null), lease: c1.lease, now: Date())
            #expect(first.status == .completed && first.result?.recordsCreated == 10 && first.progress.bytesRead == 7)
            #expect(first.leaseOwner == nil)

            // A full sync: page 1 sees 0..<4 unchanged, the final page 4..<7 with 5 and 6 changed;
            // 7..<10 were not seen and are deleted, the final page's own records are not.
            _ = try await enqueue(store, source)
            let c2 = try await claim(store)
            _ = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<4), bytesRead: 1, checkpoint: .object(["offset": .number(4)])), lease: c2.lease, now: Date())
            let final = makeRecords(4..<5) + makeRecords(5..<7, version: 1)
            let done = try await store.completeWithFinalPage(
                PageCommit(pageNumber: 2, records: final, bytesRead: 1, checkpoint: .null), lease: c2.lease, now: Date())
            #expect(done.status == .completed)
            let result = try #require(done.result)
            #expect(result.recordsCreated == 0 && result.recordsUpdated == 2 && result.recordsUnchanged == 5 && result.recordsDeleted == 3)
            #expect(result.pages == 2 && result.recordsRead == 7)
            let live = try await store.records(sourceID: source.id, limit: 100, after: nil, includeDeleted: false)
            #expect(live.map(\.key) == makeRecords(0..<7).map(\.key))
            let stored = try #require(try await store.sync(id: c2.sync.id))
            #expect(stored.attempts.map(\.status) == [.completed] && stored.attempts.first?.finishedAt != nil)

            // A lost lease writes nothing, and says so.
            await #expect(throws: SyncStoreError.leaseLost) {
                try await store.completeWithFinalPage(PageCommit(pageNumber: 3, records: makeRecords(20..<21), bytesRead: 1, checkpoint: .null), lease: c2.lease, now: Date())
            }
            #expect(try await store.record(sourceID: source.id, key: makeRecords(20..<21)[0].key) == nil)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func recordsPageByKeyWithoutSkipsOrRepeats(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            _ = try await enqueue(store, source)
            let c = try await claim(store)
            _ = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<95), bytesRead: 1, checkpoint: .null), lease: c.lease, now: Date())
            var seen: [String] = []
            var after: String?
            repeat {
                let page = try await store.records(sourceID: source.id, limit: 10, after: after, includeDeleted: false)
                seen += page.map(\.key)
                after = page.count == 10 ? page.last?.key : nil
            } while after != nil
            #expect(seen == makeRecords(0..<95).map(\.key))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func sourcesAreUniqueByNameAndCannotBeDeletedWhileActive(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource(name: "crm"))
            await #expect(throws: SyncStoreError.nameTaken("crm")) { try await store.createSource(makeSource(name: "crm")) }
            #expect(try await store.source(idOrName: "crm")?.id == source.id)
            let sync = try await enqueue(store, source)
            await #expect(throws: SyncStoreError.sourceInUse(activeSyncID: sync.id)) { try await store.deleteSource(id: source.id) }
            _ = try await store.requestCancel(syncID: sync.id, now: Date())
            try await store.deleteSource(id: source.id)
            #expect(try await store.source(idOrName: "crm") == nil)
            #expect(try await store.sync(id: sync.id) == nil)
        }
    }

    /// Both stores write a first sync's new keys in bulk and fall back record by record at
    /// the first known key: a 200-record page holding one key an earlier sync wrote (inside
    /// the second chunk of 64), then a page repeating 50 of those keys with new bodies and 50
    /// new ones. Counts, bodies and the feed are those of the record-by-record rules.
    @Test(arguments: StoreBackend.allCases)
    func aKnownKeyInsideABulkChunkIsCountedAsTheRecordRulesSay(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            _ = try await enqueue(store, source)
            let first = try await claim(store)
            _ = try await store.completeWithFinalPage(PageCommit(pageNumber: 1, records: makeRecords(100..<101), bytesRead: 1, checkpoint: nil),
                                                      lease: first.lease, now: Date())
            _ = try await enqueue(store, source, mode: .incremental)
            let second = try await claim(store)
            let one = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<200), bytesRead: 1, checkpoint: nil),
                                                 lease: second.lease, now: Date())
            #expect(one.recordsCreated == 199 && one.recordsUpdated == 0 && one.recordsUnchanged == 1, "\(one)")
            let two = try await store.commitPage(
                PageCommit(pageNumber: 2, records: makeRecords(150..<250, version: 1), bytesRead: 1, checkpoint: nil), lease: second.lease, now: Date())
            #expect(two.recordsCreated == 249 && two.recordsUpdated == 0 && two.recordsUnchanged == 1, "\(two)")
            let feed = try await store.changes(sourceID: source.id, after: 0, limit: 1000, op: nil).changes
            let expected = [100] + Array(0..<100) + Array(101..<250)
            #expect(feed.map(\.record.key) == expected.map { String(format: "%06d", $0) })
            #expect(feed.map(\.change) == feed.map(\.change).sorted() && Set(feed.map(\.change)).count == feed.count)
            #expect(feed.map { String(decoding: $0.record.data, as: UTF8.self) } == expected.map { #"{"id":\#($0),"v":\#($0 >= 150 ? 1 : 0)}"# })
            // Written again since first stored: `updated` (docs/api.md), though the sync counts
            // each key once, as created.
            #expect(feed.map(\.op) == expected.map { $0 >= 150 && $0 < 200 ? .updated : .created })
            // SQLite numbers only what it writes: the second page's 100 take 201–300, and the
            // first numbers of 150–199 are gone from the feed with their old state.
            if backend == .sqlite { #expect(feed.map(\.change) == Array(Int64(1)...150) + Array(Int64(201)...300)) }
        }
    }

    /// A record counted unchanged on one page and changed on a later page of the same sync is
    /// counted updated, not unchanged: the counts say what the sync did to the data.
    @Test(arguments: StoreBackend.allCases)
    func aRecordUnchangedThenChangedInOneSyncCountsAsUpdated(_ backend: StoreBackend) async throws {
        try await withStore(backend) { store in
            let source = try await store.createSource(makeSource())
            func body(_ id: Int, _ v: String) -> SourceRecord { SourceRecord(key: "\(id)", data: Array(#"{"id":\#(id),"v":"\#(v)"}"#.utf8)) }
            func run(_ pages: [[SourceRecord]]) async throws -> SyncProgress {
                _ = try await enqueue(store, source)
                let claimed = try await claim(store)
                for (i, page) in pages.dropLast().enumerated() {
                    _ = try await store.commitPage(PageCommit(pageNumber: i + 1, records: page, bytesRead: 1, checkpoint: nil), lease: claimed.lease, now: Date())
                }
                return try await store.completeWithFinalPage(
                    PageCommit(pageNumber: pages.count, records: pages.last ?? [], bytesRead: 1, checkpoint: nil), lease: claimed.lease, now: Date()).progress
            }
            let first = try await run([[body(1, "A"), body(2, "x")], [body(1, "B")]])
            #expect(first.recordsCreated == 2 && first.recordsUpdated == 0 && first.recordsUnchanged == 0, "\(first)")
            let second = try await run([[body(1, "B"), body(2, "x")], [body(1, "C")]])
            #expect(second.recordsCreated == 0 && second.recordsUpdated == 1 && second.recordsUnchanged == 1 && second.recordsRead == 2, "\(second)")
            let stored = try await store.record(sourceID: source.id, key: "1")
            #expect(stored.map { String(decoding: $0.data, as: UTF8.self) } == #"{"id":1,"v":"C"}"#)
            // Unchanged upstream: nothing updated, however often a key repeats.
            let third = try await run([[body(1, "C"), body(2, "x")], [body(1, "C")]])
            #expect(third.recordsUpdated == 0 && third.recordsUnchanged == 2, "\(third)")
        }
    }
}

/// Events as a listener received them.
final class EventLog: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var received: [StoreEvent] = []
    func append(_ event: StoreEvent) { lock.withLock { received.append(event) } }
    func clear() { lock.withLock { received.removeAll() } }
    var events: [StoreEvent] { lock.withLock { received } }
}
