import Foundation
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

    @Test func aPostgresDatabaseNumberedTheOldWayIsRenumberedOnceAndNothingRunsTwice() async throws {
        let url = try await PostgresCluster.shared().createDatabase("renumber")
        let store = try DatabaseStore.postgres(url: url, maximumConnections: 2).start()
        defer { Task { await store.close() } }
        try await store.migrate()
        let source = try await store.createSource(makeSource())
        // What a database migrated before names looked like: seven unnamed versions.
        _ = try await PostgresCluster.psql(url, """
            DELETE FROM tributary_schema; ALTER TABLE tributary_schema DROP COLUMN name;
            INSERT INTO tributary_schema (version) SELECT generate_series(1, 7)
            """)
        try await store.migrate()  // "resets" ran before: run again, it would fail (its table exists)
        try await store.migrate()
        let rows = try await PostgresCluster.psql(url, "SELECT version || ':' || name FROM tributary_schema ORDER BY version")
        let expected = SchemaHistory.names.enumerated().map { "\($0.offset + 1):\($0.element)" }
        #expect(rows.split(separator: "\n").map(String.init) == expected)
        #expect(try await store.schemaVersion() == SchemaHistory.names.count)
        #expect(try await store.source(idOrName: source.id)?.id == source.id)
    }
}
