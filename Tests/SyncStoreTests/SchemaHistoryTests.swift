import Foundation
import Logging
import Testing
import SyncCore
@testable import SyncStore
import TestSupport

/// Migrations are numbered alike on both stores (docs/architecture.md, "Migrations"): one
/// list of names, each store with one migration per name; a PostgreSQL database numbered
/// the old way (without "nodes", which came with its first migration) is renumbered once.
@Suite("Schema history")
struct SchemaHistoryTests {
    @Test func bothStoresListEveryMigrationByTheSameNumber() {
        #expect(SQLiteSchema.migrations.count == SchemaHistory.names.count)
        #expect(PostgresSchema.migrations.count == SchemaHistory.names.count)
        #expect(Set(SchemaHistory.names).count == SchemaHistory.names.count, "names are unique")
    }

    @Test(arguments: StoreBackend.allCases)
    func aFreshStoreIsAtTheLastNumber(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        #expect(try await store.schemaVersion() == SchemaHistory.names.count)
    }

    @Test func aPostgresDatabaseNumberedTheOldWayIsRenumberedOnce() async throws {
        let url = try await PostgresCluster.shared().createDatabase("renumber")
        let store = try DatabaseStore.postgres(url: url, maximumConnections: 2).start()
        defer { Task { await store.close() } }
        let driver = try #require(store.driver as? PostgresDriver)
        // What a database migrated before names looked like: seven unnamed versions.
        _ = try await PostgresCluster.psql(url, """
            CREATE TABLE tributary_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
            ALTER TABLE tributary_schema ADD COLUMN name text;
            INSERT INTO tributary_schema (version) SELECT generate_series(1, 7)
            """)
        let expected = SchemaHistory.names.prefix(8).enumerated().map { "\($0.offset + 1):\($0.element)" }
        for _ in 0..<2 {  // once, then nothing
            try await driver.onConnection { connection in try await PostgresSchema.renumber(connection, logger: Logger(label: "test")) }
            let rows = try await PostgresCluster.psql(url, "SELECT version || ':' || name FROM tributary_schema ORDER BY version")
            #expect(rows.split(separator: "\n").map(String.init) == expected)
        }
    }
}

/// What older versions wrote gets what this version reads: webhooks saved before receivers,
/// and their pending deliveries (whose receiver the outbox trigger took from the URL).
@Suite("Receivers of webhooks written by older versions")
struct WebhookReceiverFillTests {
    @Test(arguments: StoreBackend.allCases)
    func migrateGivesOldWebhooksAndTheirPendingDeliveriesTheirReceivers(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        var definition = makeSource(name: "old-hooks")
        definition.notify = [WebhookTarget(url: "http://127.1:9/a", events: [.failed])]
        let source = try await store.createSource(definition)
        // As an older version stored it: no receiver in the list.
        let old = #"[{"events":["failed"],"url":"http://127.1:9/a"},{"events":["failed"],"url":"HTTP://0x7f.0.0.1:9/b?x=1"}]"#
        _ = try await store.driver.execute("UPDATE sources SET notify = \(old) WHERE id = \(source.id)")
        _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
        let claimed = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
        _ = try await store.finish(claimed.lease, outcome: .failed(SyncError(.upstreamClientError, "404")), now: Date())
        #expect(Set(try await store.deliveries(syncID: claimed.sync.id).map(\.receiver)) == ["http://127.1:9/a", "HTTP://0x7f.0.0.1:9/b?x=1"],
                "the trigger could only take the URL")

        try await store.migrate()
        #expect(Set(try await store.deliveries(syncID: claimed.sync.id).map(\.receiver)) == ["http://127.0.0.1:9"])
        let stored = try #require(try await store.driver.read(["SELECT notify FROM sources WHERE id = \(source.id)"]).first(0)).string("notify")
        #expect(stored.contains(#""receiver":"http:\/\/127.0.0.1:9""#) || stored.contains(#""receiver":"http://127.0.0.1:9""#), "\(stored)")
        #expect(try await store.source(idOrName: source.id)?.notify.map(\.url) == ["http://127.1:9/a", "HTTP://0x7f.0.0.1:9/b?x=1"])
        try await store.migrate()  // again: nothing left to change
    }
}
