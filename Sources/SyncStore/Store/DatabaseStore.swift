import Foundation
import Logging
import ServiceLifecycle
import SyncCore
import Synchronization

/// The store: every rule of sources, the queue, leases and records, written once over a
/// ``StoreDriver`` (SQLite or PostgreSQL).
///
/// A `Service`: a node runs it first in its group, so its connections outlive every
/// service that uses them. Commands and tests without a group call ``start()`` and
/// ``close()``.
public final class DatabaseStore: StoreLifecycle, StoreEventSource {
    let driver: any StoreDriver
    /// Seals the secrets the store writes and opens those it reads.
    public let keyring: SecretKeyring
    private let started = Mutex<Task<Void, Never>?>(nil)

    init(driver: any StoreDriver, keyring: SecretKeyring = .none) {
        self.driver = driver
        self.keyring = keyring
    }

    /// The embedded store: one SQLite file (created if missing).
    public static func sqlite(path: String, keyring: SecretKeyring = .none) throws -> DatabaseStore {
        DatabaseStore(driver: try SQLiteDriver(path: path), keyring: keyring)
    }

    /// The scale-out store: a PostgreSQL database shared by many nodes.
    /// - Parameter maximumConnections: the pool's size; see docs/deployment.md for sizing.
    public static func postgres(url: String, maximumConnections: Int = 20, keyring: SecretKeyring = .none,
                                logger: Logger = Logger(label: "tributary.postgres")) throws -> DatabaseStore {
        DatabaseStore(driver: try PostgresDriver(url: url, maximumConnections: maximumConnections, logger: logger), keyring: keyring)
    }

    public var dialect: SQLDialect { driver.dialect }

    /// The database file, for a SQLite store.
    public var sqlitePath: String? { (driver as? SQLiteDriver)?.path }

    // MARK: Lifecycle

    /// Keeps the connections until graceful shutdown (or cancellation), then closes them.
    /// A node may ``start()`` the store before its group runs (to migrate first); this
    /// then only owns the end.
    public func run() async throws {
        start()
        try? await gracefulShutdown()
        await close()
    }

    /// Starts the connections in a task of their own (idempotent), for what must use the
    /// store before or without a service group: migrations at start-up, commands, tests.
    /// Returns the store.
    @discardableResult
    public func start() -> DatabaseStore {
        started.withLock { task in
            if task == nil { task = Task { [driver] in await driver.run() } }
        }
        return self
    }

    public func close() async {
        guard let task = started.withLock({ task in defer { task = nil }; return task }) else { return }
        task.cancel()
        await task.value
    }

    /// Brings the schema up to date, then the webhook receivers of what older versions wrote.
    public func migrate() async throws {
        try await driver.migrate()
        try await fillWebhookReceivers()
    }

    public func schemaVersion() async throws -> Int { try await driver.schemaVersion() }

    public func ping() async throws { _ = try await driver.read(["SELECT 1 AS one"]) }

    public func listen(_ onEvent: @escaping @Sendable (StoreEvent) -> Void) async throws {
        try await driver.listen(onEvent)
    }
}

extension DatabaseStore {
    /// One direct login with the URL's settings, to tell at once what retrying cannot mend:
    /// a wrong password or user, or a database that does not exist. Throws
    /// ``PostgresLoginError``; a server that does not answer is left to the pool's deadline.
    public static func checkPostgresLogin(url: String, timeout: Duration = .seconds(5), logger: Logger) async throws {
        try await PostgresDriver.checkLogin(url: url, timeout: timeout, logger: logger)
    }
}
