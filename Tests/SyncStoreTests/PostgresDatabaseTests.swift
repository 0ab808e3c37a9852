import Foundation
import Testing
import SyncCore
@testable import SyncStore
import TestSupport

/// The PostgreSQL counterparts of `SQLiteAtomicityTests`: what the database itself enforces,
/// tried with raw SQL from outside the store.
@Suite("PostgreSQL database guarantees")
struct PostgresDatabaseTests {
    func freshStore(migrated: Bool = true) async throws -> (DatabaseStore, String) {
        let url = try await PostgresCluster.shared().createDatabase("guard")
        let store = try DatabaseStore.postgres(url: url, maximumConnections: 4).start()
        if migrated { try await store.migrate() }
        return (store, url)
    }

    /// A newer node adds columns (a rolling upgrade): this node's prepared `SELECT *` and
    /// `RETURNING *` statements change result type; it reconnects and goes on, reads and writes.
    @Test func columnsAddedByANewerNodeDoNotStopThisOne() async throws {
        let (store, url) = try await freshStore()
        defer { Task { await store.close() } }
        let source = try await store.createSource(makeSource())
        // Prepare the statements on every connection of the pool.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { _ = try await store.source(idOrName: source.id); _ = try await store.listSyncs(SyncFilter(), limit: 5, before: nil) } }
            try await group.waitForAll()
        }
        _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
        let first = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
        _ = try await store.finish(first.lease, outcome: .completed, now: Date())
        try await PostgresCluster.psql(url, "ALTER TABLE sources ADD COLUMN from_the_future integer DEFAULT 7")
        try await PostgresCluster.psql(url, "ALTER TABLE syncs ADD COLUMN from_the_future integer DEFAULT 7")
        for _ in 0..<8 {
            #expect(try await store.source(idOrName: source.id)?.id == source.id)
            #expect(try await store.listSyncs(SyncFilter(), limit: 5, before: nil).count == 1)
        }
        _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
        let second = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
        let done = try await store.completeWithFinalPage(PageCommit(pageNumber: 1, records: makeRecords(0..<3), bytesRead: 30, checkpoint: nil),
                                                         lease: second.lease, now: Date())
        #expect(done.status == .completed && done.progress.recordsCreated == 3)
    }

    /// A first sync's pages insert without the conflict check; the first key the source
    /// already holds (a key repeated from an earlier page, a resync) sends that page, and the
    /// rest of the attempt, through the upsert. Counts, records and the feed come out as
    /// SQLite's, which has one path.
    @Test func newKeysInsertAndAKnownKeySendsTheAttemptToTheUpsert() async throws {
        let (pg, _) = try await freshStore()
        defer { Task { await pg.close() } }
        let (lite, cleanup) = try await StoreBackend.sqlite.makeStore(connections: 2)
        defer { cleanup() }
        let leases = try #require(pg.driver as? PostgresDriver).upsertingLeases
        func scenario(_ store: DatabaseStore, upserting: (Lease) -> Bool?) async throws -> [String] {
            var seen: [String] = []
            func note(_ p: SyncProgress, _ lease: Lease) {
                seen.append("\(p.recordsCreated)/\(p.recordsUpdated)/\(p.recordsUnchanged) \(upserting(lease).map(String.init) ?? "-")")
            }
            let source = try await store.createSource(makeSource())
            _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
            let first = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
            let pages = [makeRecords(0..<3), makeRecords(3..<6), makeRecords(1..<2, version: 1) + makeRecords(6..<7), makeRecords(7..<8)]
            for (i, records) in pages.enumerated() {
                note(try await store.commitPage(PageCommit(pageNumber: i + 1, records: records, bytesRead: 1, checkpoint: nil),
                                                lease: first.lease, now: Date()), first.lease)
            }
            _ = try await store.finish(first.lease, outcome: .completed, now: Date())
            seen.append("finished \(upserting(first.lease).map(String.init) ?? "-")")
            _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
            let second = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
            note(try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<4), bytesRead: 1, checkpoint: nil),
                                            lease: second.lease, now: Date()), second.lease)
            let done = try await store.completeWithFinalPage(
                PageCommit(pageNumber: 2, records: makeRecords(4..<7, version: 2), bytesRead: 1, checkpoint: nil), lease: second.lease, now: Date())
            note(done.progress, second.lease)
            let feed = try await store.changes(sourceID: source.id, after: 0, limit: 100, op: nil)
            // In change order; PostgreSQL's numbers may skip (docs/api.md), so they are not compared.
            #expect(feed.changes.map(\.change) == feed.changes.map(\.change).sorted())
            seen += feed.changes.map { "\($0.op) \($0.record.key) \(String(decoding: $0.record.data, as: UTF8.self))" }
            return seen
        }
        let onPostgres = try await scenario(pg) { leases.contains($0.token) }
        let onSQLite = try await scenario(lite) { _ in nil }
        // Pages 1–2 insert; page 3 repeats key 1 and goes to the upsert, as does page 4; the
        // attempt's mark goes with its end. The resync's first page meets known keys at once.
        #expect(onPostgres.prefix(5) == ["3/0/0 false", "6/0/0 false", "7/0/0 true", "8/0/0 true", "finished false"])
        #expect(onPostgres[5] == "0/1/3 true")
        let strip = { (lines: [String]) in lines.map { $0.replacingOccurrences(of: #" (true|false|-)$"#, with: "", options: .regularExpression) } }
        #expect(strip(onPostgres) == strip(onSQLite))
    }

    @Test func aPageThatFailsHalfwayLeavesNoTrace() async throws {
        let (store, url) = try await freshStore()
        defer { Task { await store.close() } }
        let source = try await store.createSource(makeSource())
        _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
        let c = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
        _ = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<3), bytesRead: 10, checkpoint: .object(["offset": .number(3)])), lease: c.lease, now: Date())
        try await PostgresCluster.psql(url, """
            CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.key = 'poison' THEN RAISE EXCEPTION 'poisoned record'; END IF; RETURN NEW; END $$;
            CREATE TRIGGER poison BEFORE INSERT ON records FOR EACH ROW EXECUTE FUNCTION poison();
            """)
        let page = makeRecords(3..<6) + [SourceRecord(key: "poison", data: Array("{}".utf8))] + makeRecords(6..<8)
        // Both write paths: the one-statement page, and the last page with the completion.
        // Each must fail because the trigger fired, not for any other reason (a typo in SQL would also throw).
        let viaPage = await #expect(throws: (any Error).self) {
            try await store.commitPage(PageCommit(pageNumber: 2, records: page, bytesRead: 99, checkpoint: .object(["offset": .number(8)])), lease: c.lease, now: Date())
        }
        #expect(String(reflecting: viaPage).contains("poisoned record"), "\(String(reflecting: viaPage))")
        let viaCompletion = await #expect(throws: (any Error).self) {
            try await store.completeWithFinalPage(PageCommit(pageNumber: 2, records: page, bytesRead: 99, checkpoint: .null), lease: c.lease, now: Date())
        }
        #expect(String(reflecting: viaCompletion).contains("poisoned record"), "\(String(reflecting: viaCompletion))")
        let after = try #require(try await store.sync(id: c.sync.id))
        #expect(after.status == .running)
        #expect(after.progress.recordsCreated == 3 && after.progress.pages == 1 && after.progress.bytesRead == 10)
        #expect(after.checkpoint == .object(["offset": .number(3)]))
        #expect(after.attempts.map(\.status) == [.running])
        #expect(try await store.records(sourceID: source.id, limit: 100, after: nil, includeDeleted: true).map(\.key) == makeRecords(0..<3).map(\.key))
    }

    /// An older version stored `next_retry_at = 'Infinity'` (from `Retry-After: inf`): every
    /// reader now gets a clamped time instead of trapping, and the sync can be cancelled.
    @Test func aRetryTimeStoredAsInfinityByAnOlderVersionReadsClamped() async throws {
        let (store, url) = try await freshStore()
        defer { Task { await store.close() } }
        let sync = try await retryingSync(store)
        try await PostgresCluster.psql(url, "UPDATE syncs SET next_retry_at = 'Infinity', run_at = 'Infinity' WHERE id = '\(sync.id)'")
        try await expectReadersSurviveAnAbsurdTime(store, syncID: sync.id)
    }

    @Test func sixStoresMigratingOneDatabaseAtOnceApplyEachMigrationOnce() async throws {
        let url = try await PostgresCluster.shared().createDatabase("migrate")
        let stores = try (0..<6).map { _ in try DatabaseStore.postgres(url: url, maximumConnections: 2).start() }
        defer { for store in stores { Task { await store.close() } } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in stores { group.addTask { try await store.migrate() } }
            try await group.waitForAll()
        }
        let versions = try await PostgresCluster.psql(url, "SELECT string_agg(version::text, ',' ORDER BY version) FROM tributary_schema")
        #expect(versions.trimmingCharacters(in: .whitespacesAndNewlines) == (1...SchemaHistory.names.count).map(String.init).joined(separator: ","),
                "numbered like SQLite")
        let source = try await stores[0].createSource(makeSource())
        #expect(try await stores[5].source(idOrName: source.id) != nil)
    }

    /// A database migrated by a newer tributary is refused with a clear error.
    @Test func aDatabaseNewerThanTheBinaryIsRefused() async throws {
        let (store, url) = try await freshStore()
        defer { Task { await store.close() } }
        let current = try await store.schemaVersion()
        try await PostgresCluster.psql(url, "INSERT INTO tributary_schema (version) VALUES (99)")
        await #expect(throws: SchemaTooNewError(databaseVersion: 99, supportedVersion: current)) { try await store.migrate() }
        #expect(try await store.schemaVersion() == 99)
    }

    @Test func theDatabaseRejectsAnUnknownStatusAndASecondActiveSync() async throws {
        let (store, url) = try await freshStore()
        defer { Task { await store.close() } }
        let source = try await store.createSource(makeSource())
        let sync = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api)).sync
        let badStatus = await #expect(throws: ClusterError.self) {
            try await PostgresCluster.psql(url, "UPDATE syncs SET status = 'in_progress' WHERE id = '\(sync.id)'")
        }
        #expect(badStatus?.description.contains("syncs_status_check") == true, "\(badStatus?.description ?? "")")
        let second = await #expect(throws: ClusterError.self) {
            try await PostgresCluster.psql(url, """
                INSERT INTO syncs (id, source_id, status, mode, trigger, max_attempts, queued_at, run_at)
                VALUES ('syn_second', '\(source.id)', 'queued', 'full', 'api', 3, 0, 0)
                """)
        }
        #expect(second?.description.contains("syncs_one_active_per_source") == true, "\(second?.description ?? "")")
        #expect(try await store.listSyncs(SyncFilter(sourceID: source.id), limit: 10, before: nil).map(\.id) == [sync.id])
    }

    /// The 5 s deadline on a wait for a connection (one watchdog for all waits): with the
    /// pool's only connection busy for 2 s, the next operation waits and then runs; busy for
    /// 8 s, the next one gives up as `unavailable` after about 5 s, and never runs.
    @Test func aWaitForAConnectionEndsAtTheDeadlineAndNotBefore() async throws {
        let url = try await PostgresCluster.shared().createDatabase("deadline")
        let store = try DatabaseStore.postgres(url: url, maximumConnections: 1).start()
        defer { Task { await store.close() } }
        try await store.migrate()
        let driver = store.driver
        async let short = driver.read(["SELECT pg_sleep(2)"])
        try await Task.sleep(for: .milliseconds(300))
        var start = ContinuousClock.now
        #expect(try await driver.read(["SELECT 1 AS one"]).first(0)?.int("one") == 1)
        #expect(ContinuousClock.now - start > .seconds(1), "it waited for the connection")
        _ = try await short

        async let long = driver.read(["SELECT pg_sleep(8)"])
        try await Task.sleep(for: .milliseconds(300))
        start = ContinuousClock.now
        await #expect(throws: SyncStoreError.unavailable("The database cannot be reached.")) {
            _ = try await driver.execute("INSERT INTO nodes (id, role, workers, started_at, heartbeat_at) VALUES ('late', 'all', 0, 0, 0)")
        }
        let waited = ContinuousClock.now - start
        #expect(waited > .seconds(4) && waited < .seconds(7), "\(waited)")
        _ = try await long
        #expect(try await driver.read(["SELECT count(*) AS n FROM nodes WHERE id = 'late'"]).first(0)?.int("n") == 0, "the late write never ran")
    }

    @Test func anUnreachableDatabaseIsUnavailableWithinSeconds() async throws {
        let store = try DatabaseStore.postgres(url: "postgres://postgres@127.0.0.1:\(try PostgresCluster.freePort())/nothing", maximumConnections: 2).start()
        defer { Task { await store.close() } }
        let start = ContinuousClock.now
        await #expect(throws: SyncStoreError.unavailable("The database cannot be reached.")) { try await store.ping() }
        #expect(ContinuousClock.now - start < .seconds(15))
    }
}
