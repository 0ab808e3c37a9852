import Foundation
import GRDB
import Testing
import SyncCore
@testable import SyncStore
import TestSupport

/// Invariant 2 on SQLite, broken on purpose: a trigger makes the database itself
/// fail in the middle of a page, after some of its records were written.
@Suite("SQLite page atomicity")
struct SQLiteAtomicityTests {
    @Test func aPageThatFailsHalfwayLeavesNoTrace() async throws {
        try await withStoreFile("atomic") { store, raw in
            let source = try await store.createSource(makeSource())
            _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
            let c = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
            _ = try await store.commitPage(PageCommit(pageNumber: 1, records: makeRecords(0..<3), bytesRead: 10, checkpoint: .object(["offset": .number(3)])), lease: c.lease, now: Date())

            try await raw.write { db in
                try db.execute(sql: """
                    CREATE TRIGGER poison BEFORE INSERT ON records WHEN NEW.key = 'poison'
                    BEGIN SELECT RAISE(ABORT, 'poisoned record'); END
                    """)
            }
            let page = makeRecords(3..<6) + [SourceRecord(key: "poison", data: Array("{}".utf8))] + makeRecords(6..<8)
            // It must fail because the trigger fired, not for any other reason (a typo in SQL would also throw).
            let error = await #expect(throws: (any Error).self) {
                try await store.commitPage(PageCommit(pageNumber: 2, records: page, bytesRead: 99, checkpoint: .null), lease: c.lease, now: Date())
            }
            #expect(String(reflecting: error).contains("poisoned record"), "\(String(reflecting: error))")
            let after = try #require(try await store.sync(id: c.sync.id))
            #expect(after.progress.recordsCreated == 3 && after.progress.pages == 1 && after.progress.bytesRead == 10)
            #expect(after.checkpoint == .object(["offset": .number(3)]))
            #expect(try await store.records(sourceID: source.id, limit: 100, after: nil, includeDeleted: true).map(\.key) == makeRecords(0..<3).map(\.key))
        }
    }

    /// Turning a fresh file to WAL needs its exclusive lock, and SQLite refuses at once
    /// (no busy handler) while another connection holds any lock: eight stores opening one
    /// new file together, forty times over, all open and all see WAL.
    @Test func manyStoresOpeningOneFreshFileAtOnceAllOpen() async throws {
        let dir = try TemporaryDirectory("wal-race")
        defer { dir.remove() }
        for round in 0..<40 {
            let path = dir.file("fresh-\(round).sqlite")
            let failures = await withTaskGroup(of: String?.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        await Task.detached {
                            do { _ = try DatabaseStore.sqlite(path: path); return nil } catch { return String(describing: error) }
                        }.value
                    }
                }
                return await group.reduce(into: [String]()) { if let failure = $1 { $0.append(failure) } }
            }
            #expect(failures.isEmpty, "round \(round): \(failures)")
        }
    }

    /// An older version stored an infinite retry time (from `Retry-After: inf`): every reader
    /// now gets a clamped time instead of trapping, and the sync can be cancelled.
    @Test func aRetryTimeStoredAsInfinityByAnOlderVersionReadsClamped() async throws {
        try await withStoreFile("poison-time") { store, raw in
            let sync = try await retryingSync(store)
            try await raw.write { db in
                try db.execute(sql: "UPDATE syncs SET next_retry_at = 9e999, run_at = 9e999 WHERE id = ?", arguments: [sync.id])
            }
            try await expectReadersSurviveAnAbsurdTime(store, syncID: sync.id)
        }
    }

    /// SQLite keeps whatever a column is given: a row damaged by hand (text where a count
    /// belongs, a `NULL` forced past the schema by an older file) makes the reads of that
    /// row throw an error naming the column; the process does not trap (GRDB's decoding
    /// trapped on such values) and every other row still reads.
    @Test func aDamagedRowThrowsInsteadOfTrapping() async throws {
        try await withStoreFile("damaged") { store, raw in
            let damaged = try await retryingSync(store)
            let other = try await store.createSource(makeSource(name: "other"))
            try await raw.write { db in
                try db.execute(sql: "UPDATE syncs SET pages = 'many', records_read = 1.5 WHERE id = ?", arguments: [damaged.id])
            }
            let read = await #expect(throws: WrongType.self) { _ = try await store.sync(id: damaged.id) }
            #expect(read?.description == "column pages does not hold an integer")
            let listed = await #expect(throws: WrongType.self) { _ = try await store.listSyncs(SyncFilter(), limit: 10, before: nil) }
            #expect(listed?.description == "column pages does not hold an integer")
            #expect(try await store.sourceView(idOrName: other.id)?.source.name == "other")
            try await raw.write { db in
                try db.execute(sql: "UPDATE syncs SET pages = 2, records_read = 1.0 WHERE id = ?", arguments: [damaged.id])
            }
            #expect(try await store.sync(id: damaged.id)?.progress.pages == 2, "an integral REAL reads as an integer")
        }
    }

    /// The workers' paths read rows the same way: a damaged `sources` row makes the claim
    /// throw an error naming the column (GRDB's `Row` trapped there, taking the node down),
    /// and a stored document that is not JSON any more throws instead of reading as nothing
    /// (a config that read as `{}` would have synced with the defaults).
    @Test func theWorkersPathsAndStoredDocumentsThrowOnDamage() async throws {
        try await withStoreFile("damaged-work") { store, raw in
            let source = try await store.createSource(makeSource())
            _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
            try await raw.write { db in
                try db.execute(sql: "UPDATE sources SET priority = 'high' WHERE id = ?", arguments: [source.id])
            }
            let claim = await #expect(throws: WrongType.self) { _ = try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()) }
            #expect(claim?.column == "priority")

            try await raw.write { db in
                try db.execute(sql: "UPDATE sources SET priority = 0, config = '{\"records\": ' WHERE id = ?",
                               arguments: [source.id])
            }
            let read = await #expect(throws: WrongType.self) { _ = try await store.source(idOrName: source.id) }
            #expect(read?.column == "config")
            let claimed = await #expect(throws: WrongType.self) { _ = try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()) }
            #expect(claimed?.column == "config")

            try await raw.write { db in
                try db.execute(sql: "UPDATE sources SET config = '{\"records\": 3}', state = '[1' WHERE id = ?", arguments: [source.id])
            }
            #expect((await #expect(throws: WrongType.self) { _ = try await store.source(idOrName: source.id) })?.column == "state")
            try await raw.write { db in try db.execute(sql: "UPDATE sources SET state = '{}' WHERE id = ?", arguments: [source.id]) }
            let c = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
            #expect(c.source.config["records"] == .number(3))
        }
    }

    /// A migrated store on a file of its own, and a second, raw connection to that file for
    /// what the test breaks on purpose.
    private func withStoreFile(_ name: String, _ body: (DatabaseStore, DatabaseQueue) async throws -> Void) async throws {
        let dir = try TemporaryDirectory(name)
        defer { dir.remove() }
        let path = dir.file("t.sqlite")
        let store = try DatabaseStore.sqlite(path: path).start()
        try await store.migrate()
        try await body(store, try DatabaseQueue(path: path))
    }

    /// A database that only migration 1 ever touched (the first release) upgrades in place:
    /// its data survives and the later tables work.
    @Test func aDatabaseAtMigrationOneUpgradesKeepingItsData() async throws {
        let dir = try TemporaryDirectory("upgrade")
        defer { dir.remove() }
        let path = dir.file("old.sqlite")
        let raw = try DatabaseQueue(path: path)
        try await raw.write { db in
            try db.execute(sql: SQLiteSchema.migrations[0])
            try db.execute(sql: "PRAGMA user_version = 1")
            try db.execute(sql: """
                INSERT INTO sources (id, seq, name, kind, config, retry, created_at, updated_at)
                VALUES ('src_old', 1, 'old', 'synthetic', '{"records":1}', '{}', 0, 0)
                """)
        }
        let store = try DatabaseStore.sqlite(path: path).start()
        #expect(try await store.schemaVersion() == 1)
        try await store.migrate()
        #expect(try await store.schemaVersion() == SQLiteSchema.migrations.count)
        #expect(try await store.source(idOrName: "old")?.id == "src_old")
        try await store.registerNode(NodeInfo(id: "n1", role: "all", workers: 1, startedAt: Date(), heartbeatAt: Date()))
        #expect(try await store.healthSnapshot(now: Date()).nodes.map(\.id) == ["n1"])
    }

    /// A database migrated by a newer tributary is refused with a clear error, untouched.
    @Test func aDatabaseNewerThanTheBinaryIsRefused() async throws {
        let dir = try TemporaryDirectory("newer")
        defer { dir.remove() }
        let path = dir.file("new.sqlite")
        let store = try DatabaseStore.sqlite(path: path).start()
        try await store.migrate()
        let raw = try DatabaseQueue(path: path)
        try await raw.write { db in try db.execute(sql: "PRAGMA user_version = 99") }
        await #expect(throws: SchemaTooNewError(databaseVersion: 99, supportedVersion: SQLiteSchema.migrations.count)) {
            try await store.migrate()
        }
        #expect(try await store.schemaVersion() == 99)
        let (code, out) = try await runTributary(["serve", "--port", "0", "--database", "sqlite:new.sqlite"], directory: dir)
        #expect(code != 0)
        #expect(out.contains("version 99, newer than this tributary knows"), "\(out)")
        #expect(out.split(separator: "\n").count == 1, "\(out)")
    }

    @Test func storesMigratingOneFileAtOnceAllSucceed() async throws {
        let dir = try TemporaryDirectory("migrate")
        defer { dir.remove() }
        let stores = try (0..<4).map { _ in try DatabaseStore.sqlite(path: dir.file("m.sqlite")).start() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in stores { group.addTask { try await store.migrate() } }
            try await group.waitForAll()
        }
        let source = try await stores[0].createSource(makeSource())
        #expect(try await stores[3].source(idOrName: source.id) != nil)
    }

    @Test func theDatabaseRejectsAnUnknownStatusAndASecondActiveSync() async throws {
        let dir = try TemporaryDirectory("check")
        defer { dir.remove() }
        let store = try DatabaseStore.sqlite(path: dir.file("c.sqlite")).start()
        try await store.migrate()
        let source = try await store.createSource(makeSource())
        let sync = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api)).sync
        let raw = try DatabaseQueue(path: dir.file("c.sqlite"))
        let badStatus = await #expect(throws: DatabaseError.self) {
            try await raw.write { db in try db.execute(sql: "UPDATE syncs SET status = 'in_progress' WHERE id = ?", arguments: [sync.id]) }
        }
        #expect(badStatus?.extendedResultCode == .SQLITE_CONSTRAINT_CHECK, "\(String(describing: badStatus))")
        // Bypass the store's code entirely: the partial unique index alone refuses a second active sync.
        let second = await #expect(throws: DatabaseError.self) {
            try await raw.write { db in
                try db.execute(sql: """
                    INSERT INTO syncs (id, seq, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at)
                    VALUES ('syn_x', 999, ?, 'running', 'full', 0, 'api', 5, 0, 0)
                    """, arguments: [source.id])
            }
        }
        #expect(second?.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE, "\(String(describing: second))")
        #expect(second?.message?.contains("syncs.source_id") == true, "\(String(describing: second))")
    }
}
