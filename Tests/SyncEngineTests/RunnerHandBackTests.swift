import Foundation
import Logging
import Synchronization
import Testing
import SyncConnectors
import SyncCore
import SyncEngine
import SyncServer
import SyncStore
import TestSupport

/// A kind whose first page waits until the test opens the gate: the test can then change
/// the database under a sync that is between reading a page and committing it.
final class GateKind: SyncSourceKind, Sendable {
    let open = Mutex(false)
    let firstPageAsked = Mutex(0)
    /// The offset of the page that waits for the gate (the first page unless set).
    let gatedOffset: Int
    init(gatedOffset: Int = 0) { self.gatedOffset = gatedOffset }
    var name: String { "gate" }
    func validate(config: JSONObject) -> [FieldError] { [] }
    func makeSource(_ context: SourceContext) throws -> any SyncSource { Gate(kind: self) }

    struct Gate: SyncSource {
        let kind: GateKind
        func readPage(_ request: PageRequest) async throws -> SourcePage {
            let offset = request.checkpoint?["offset"]?.intValue ?? 0
            if offset == kind.gatedOffset {
                kind.firstPageAsked.withLock { $0 += 1 }
                while !kind.open.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
            }
            let records = (offset..<offset + 10).map { SourceRecord(key: String($0), data: Array(#"{"id":\#($0)}"#.utf8)) }
            return SourcePage(records: records, bytesRead: 10, next: offset + 10 < 30 ? .object(["offset": .number(Double(offset + 10))]) : nil)
        }
    }
}

/// The runner's ways of ending an attempt without failing the sync: a lost lease (another
/// node owns the sync now: write nothing), and a source kind this node does not know.
@Suite("The runner's hand-back paths")
struct RunnerHandBackTests {
    func withGateNode(_ backend: StoreBackend, gatedOffset: Int = 0,
                      _ body: @Sendable (any SyncStore, GateKind, WorkerPool) async throws -> Void) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        let gate = GateKind(gatedOffset: gatedOffset)
        var kinds = SourceKindRegistry.builtIn
        kinds.register(gate)
        let pool = WorkerPool(store: store, kinds: kinds, configuration: EngineConfiguration(workers: 1, nodeID: "first", leaseSeconds: 30),
                              logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            defer {
                pool.beginShutdown()
                group.cancelAll()
            }
            try await body(store, gate, pool)
        }
    }

    /// The lease is taken over while the first node holds a page it has read: its commit is
    /// refused, it writes nothing more, and the new owner's attempt stands.
    @Test(arguments: StoreBackend.allCases)
    func aLeaseLostMidPageWritesNothing(_ backend: StoreBackend) async throws {
        try await withGateNode(backend) { store, gate, pool in
            let source = try await store.createSource(makeSource(name: "gated", kind: "gate", config: [:]))
            let sync = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api)).sync
            pool.wakeUp.signal()
            _ = try await eventually(timeout: .seconds(10), every: .milliseconds(10)) { gate.firstPageAsked.withLock { $0 } > 0 ? true : nil }
            // Another node takes over: the lease expires (as if the first node paused), is
            // rescued, and is claimed elsewhere.
            #expect(try await store.rescueExpiredLeases(now: Date().addingTimeInterval(3600)) == [sync.id])
            let later = Date().addingTimeInterval(3601)
            let other = try #require(try await store.claimNext(owner: "second", leaseSeconds: 30, now: later))
            #expect(other.sync.id == sync.id && other.lease.attempt == 2)
            gate.open.withLock { $0 = true }
            // The first node's page commit is refused; it goes back to idle without writing.
            _ = try await eventually(timeout: .seconds(10), every: .milliseconds(10)) { pool.runningCount == 0 ? true : nil }
            let after = try #require(try await store.sync(id: sync.id))
            #expect(after.status == .running)
            #expect(after.leaseOwner == "second")
            #expect(after.progress.pages == 0 && after.progress.recordsCreated == 0)
            #expect(try await store.records(sourceID: source.id, limit: 10, after: nil, includeDeleted: true).isEmpty)
            // The second owner completes it alone, with exact counts.
            for page in 1...3 {
                let records = ((page - 1) * 10..<page * 10).map { SourceRecord(key: String($0), data: Array(#"{"id":\#($0)}"#.utf8)) }
                let commit = PageCommit(pageNumber: page, records: records, bytesRead: 10, checkpoint: page < 3 ? .object(["offset": .number(Double(page * 10))]) : .null)
                _ = try await store.commitPage(commit, lease: other.lease, now: later)
            }
            let done = try await store.finish(other.lease, outcome: .completed, now: later)
            #expect(done.progress.recordsCreated == 30 && done.progress.pages == 3)
        }
    }

    /// The database lost a page the runner saw committed (a crash without synchronous commit,
    /// a failover to a lagging replica): the next page is refused, the runner hands the sync
    /// back, and the next attempt resumes from what the database holds, counts exact.
    @Test func aLostCommitHandsTheSyncBackToResumeFromTheStoredCheckpoint() async throws {
        try await withGateNode(.sqlite, gatedOffset: 10) { store, gate, pool in
            let path = try #require((store as? DatabaseStore)?.sqlitePath)
            let source = try await store.createSource(makeSource(name: "gated", kind: "gate", config: [:]))
            let sync = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api)).sync
            pool.wakeUp.signal()
            // Page 1 is committed while page 2 waits at the gate.
            _ = try await eventually(timeout: .seconds(10), every: .milliseconds(10)) { () -> Bool? in
                let pages = try await store.sync(id: sync.id)?.progress.pages
                return gate.firstPageAsked.withLock { $0 } > 0 && pages == 1 ? true : nil
            }
            // The database forgets page 1, as a crash that lost its commit would.
            try await sqlite3(path, """
                UPDATE syncs SET pages = 0, checkpoint = NULL, records_read = 0, records_created = 0 WHERE id = '\(sync.id)';
                DELETE FROM records;
                """)
            gate.open.withLock { $0 = true }
            let done = try await eventually(timeout: .seconds(20), every: .milliseconds(20)) { () -> Sync? in
                let s = try await store.sync(id: sync.id)
                return s?.status == .completed ? s : nil
            }
            #expect(done.progress.pages == 3 && done.progress.recordsCreated == 30 && done.progress.recordsRead == 30)
            #expect(done.attempts.count == 2)
            #expect(done.attempts.first?.status == .queued)
            #expect(done.attempts.first?.error?.message.contains("a lost commit") == true, "\(done.attempts)")
            #expect(try await store.records(sourceID: source.id, limit: 100, after: nil, includeDeleted: true).count == 30)
        }
    }

    /// A source whose kind this node does not know fails with `source_kind_unknown`, and the
    /// node goes on with other syncs.
    @Test(arguments: StoreBackend.allCases)
    func anUnknownSourceKindFailsTheSyncNotTheNode(_ backend: StoreBackend) async throws {
        try await withGateNode(backend) { store, gate, pool in
            gate.open.withLock { $0 = true }
            let mystery = try await store.createSource(makeSource(name: "mystery", kind: "mystery", config: [:]))
            let bad = try await store.enqueue(EnqueueRequest(sourceID: mystery.id, mode: .full, priority: 0, trigger: .api)).sync
            let fine = try await store.createSource(makeSource(name: "fine", kind: "gate", config: [:]))
            let good = try await store.enqueue(EnqueueRequest(sourceID: fine.id, mode: .full, priority: 0, trigger: .api)).sync
            pool.wakeUp.signal()
            let failed = try await eventually(timeout: .seconds(10), every: .milliseconds(10)) { () -> Sync? in
                let s = try await store.sync(id: bad.id)
                return s?.status.isTerminal == true ? s : nil
            }
            #expect(failed.status == .failed)
            #expect(failed.error?.code == .sourceKindUnknown)
            let completed = try await eventually(timeout: .seconds(10), every: .milliseconds(10)) { () -> Sync? in
                let s = try await store.sync(id: good.id)
                return s?.status == .completed ? s : nil
            }
            #expect(completed.progress.recordsCreated == 30)
        }
    }
}
