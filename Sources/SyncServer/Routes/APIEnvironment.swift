import Foundation
import Prometheus
import SyncConnectors
import SyncCore
import SyncStore

/// What the routes work with: the store's roles the API plays (``APIStore``: no claims, no
/// page writes, no leases), the known source kinds, and (when this node runs workers) their
/// status, for `/readyz`. The routes never drive the engine: the
/// store's events wake it and carry cancels (``StoreEventSource``).
public struct APIEnvironment: Sendable {
    public var store: any APIStore
    public var kinds: SourceKindRegistry
    public var workers: (any WorkerStatus)?
    public var maxBodyBytes: Int
    /// What `POST /v1/maintenance/prune` deletes when the body does not say.
    public var retention: RetentionPolicy
    /// What the node counts, and the registry `GET /metrics` writes out.
    public var metrics: TributaryMetrics
    public var prometheus: PrometheusCollectorRegistry
    /// What webhook URLs may reach (the sources' policy): a blocked one is refused at create.
    public var egress: EgressPolicy
    /// Wakes the change feed's waiting readers (fed by the store's events through the node's relay).
    public var changes: ChangeSignal
    /// The id of the key that seals new secrets at rest; `nil`: they are stored in the clear.
    public var secretKeyID: String?

    public init(store: any APIStore, kinds: SourceKindRegistry, workers: (any WorkerStatus)?, maxBodyBytes: Int = 1 << 20,
                retention: RetentionPolicy = .default, prometheus: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                metrics: TributaryMetrics? = nil, egress: EgressPolicy = .default,
                changes: ChangeSignal = ChangeSignal()) {
        self.changes = changes
        self.prometheus = prometheus
        self.egress = egress
        self.metrics = metrics ?? TributaryMetrics(prometheus: prometheus)
        self.store = store
        self.kinds = kinds
        self.workers = workers
        self.maxBodyBytes = maxBodyBytes
        self.retention = retention
    }

    func source(_ idOrName: String) async throws -> Source {
        guard let source = try await store.source(idOrName: idOrName) else { throw Self.noSource(idOrName) }
        return source
    }

    /// The source with its summary, read by one statement.
    func sourceView(_ idOrName: String) async throws -> SourceView {
        guard let view = try await store.sourceView(idOrName: idOrName) else { throw Self.noSource(idOrName) }
        return view
    }

    private static func noSource(_ idOrName: String) -> Problem { .notFound("No source \(idOrName).") }
}
