import Foundation
import SyncCore
import SyncStore

/// The store implementations every conformance test runs against.
public enum StoreBackend: String, CaseIterable, Sendable {
    case sqlite
    case postgres

    /// A fresh, migrated store and a cleanup closure. `connections` sizes the PostgreSQL pool:
    /// a test that runs N operations at once gives it N, so none waits past the store's 5 s
    /// connection deadline on a machine loaded by the rest of the suite.
    public func makeStore(connections: Int = 8) async throws -> (store: DatabaseStore, cleanup: @Sendable () -> Void) {
        switch self {
        case .sqlite:
            let dir = try TemporaryDirectory("store")
            let store = try DatabaseStore.sqlite(path: dir.file("test.sqlite")).start()
            try await store.migrate()
            return (store, { dir.remove() })
        case .postgres:
            let url = try await PostgresCluster.shared().createDatabase("store")
            let store = try DatabaseStore.postgres(url: url, maximumConnections: connections).start()
            try await store.migrate()
            return (store, { Task { await store.close() } })
        }
    }

    /// `count` stores on one fresh database (for SQLite, each its own connections to one
    /// file, as processes have): what several nodes see, racing for real.
    public func makeStores(_ count: Int, connections: Int = 4) async throws -> (stores: [DatabaseStore], cleanup: @Sendable () -> Void) {
        switch self {
        case .sqlite:
            let dir = try TemporaryDirectory("stores")
            let stores = try (0..<count).map { _ in try DatabaseStore.sqlite(path: dir.file("test.sqlite")).start() }
            try await stores[0].migrate()
            return (stores, { dir.remove() })
        case .postgres:
            let url = try await PostgresCluster.shared().createDatabase("stores")
            let stores = try (0..<count).map { _ in try DatabaseStore.postgres(url: url, maximumConnections: connections).start() }
            try await stores[0].migrate()
            return (stores, { for store in stores { Task { await store.close() } } })
        }
    }
}


/// A source definition for tests.
public func makeSource(name: String = "src-\(UUID().uuidString.prefix(8))", kind: String = "synthetic",
                       config: JSONObject = ["records": .number(10), "page_size": .number(5)],
                       retry: RetryPolicy = .default, minTriggerIntervalSeconds: Double = 0) -> Source {
    let now = Date()
    return Source(id: Identifier.make("src"), name: name, kind: kind, config: config, retry: retry,
                  minTriggerIntervalSeconds: minTriggerIntervalSeconds, createdAt: now, updatedAt: now)
}

/// Records `from..<to` with deterministic bytes.
public func makeRecords(_ range: Range<Int>, version: Int = 0) -> [SourceRecord] {
    range.map { SourceRecord(key: String(format: "%06d", $0), data: Array(#"{"id":\#($0),"v":\#(version)}"#.utf8)) }
}

/// `source` created straight through the store and a full sync of it queued, as another node
/// would write them (this node's own counters never see it); the queued sync.
@discardableResult
public func createAndQueue(_ store: any SyncStore, _ source: Source) async throws -> Sync {
    let created = try await store.createSource(source)
    return try await store.enqueue(EnqueueRequest(sourceID: created.id, mode: .full, priority: 0, trigger: .api)).sync
}
