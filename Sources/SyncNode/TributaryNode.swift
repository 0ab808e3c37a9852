import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import SyncConnectors
import SyncCore
import SyncEngine
import SyncServer
import SyncStore

/// One node, wired once: the store, the engine's services and the API. `tributary serve`
/// builds its node here, and so do the tests, so what they test is what runs.
public struct TributaryNode: Sendable {
    public let store: any SyncStore
    public let pool: WorkerPool
    public let server: TributaryServer
    /// The engine's services, in start order: the workers, the lease rescuer, the scheduler,
    /// the pruner (unless disabled), the node heartbeat (if enabled) and the event relay.
    public let engineServices: [any Service]
    /// What this node counts (`GET /metrics`).
    public let metrics: TributaryMetrics

    /// - Parameters:
    ///   - role: what the node says it is in `nodes` (`all`, `api`, `worker`).
    ///   - rescueInterval: how often expired leases are rescued (default: a third of the lease).
    ///   - heartbeat: whether the node keeps a row in `nodes` (off in tests that count nodes).
    ///   - prometheus: the registry `GET /metrics` writes out; `metrics` records into it (pass
    ///     the same `metrics` to the `UpstreamClient` of `kinds`, so its requests are counted too).
    ///   - webhookClient: the client that delivers webhooks, under its egress policy (which
    ///     also vets webhook URLs at create); `nil`: this node delivers none (the outbox waits
    ///     for a node that does).
    public init(store: any SyncStore, kinds: SourceKindRegistry, engine: EngineConfiguration, server: ServerConfiguration,
                role: String = "all", rescueInterval: Duration? = nil, scheduleInterval: Duration = .seconds(1),
                heartbeat: Bool = true, prometheus: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                metrics: TributaryMetrics? = nil, webhookClient: UpstreamClient? = nil,
                random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.store = store
        let metrics = metrics ?? TributaryMetrics(prometheus: prometheus)
        self.metrics = metrics
        pool = WorkerPool(store: store, kinds: kinds, configuration: engine, logger: Logger(label: "tributary.workers"), metrics: metrics, random: random)
        var env = APIEnvironment(store: store, kinds: kinds, workers: pool, maxBodyBytes: server.maxBodyBytes, retention: engine.retention,
                                 prometheus: prometheus, metrics: metrics, egress: webhookClient?.egress ?? .default)
        env.secretKeyID = (store as? DatabaseStore)?.keyring.sealingKeyID
        self.server = TributaryServer(env: env, configuration: server)
        let rescueEvery = rescueInterval ?? .milliseconds(Int(max(1, engine.leaseSeconds / 3) * 1000))
        var services: [any Service] = [
            pool,
            LeaseRescuer(store: store, interval: rescueEvery, metrics: metrics),
            Scheduler(store: store, interval: scheduleInterval),
        ]
        if let every = engine.pruneInterval { services.append(Pruner(store: store, policy: engine.retention, interval: every, metrics: metrics)) }
        if let webhookClient {
            services.append(WebhookDeliverer(store: store, client: webhookClient, policy: engine.webhooks, nodeID: engine.nodeID,
                                             render: WebhookPayload.render, metrics: metrics, random: random))
        }
        if heartbeat {
            let now = Date()
            services.append(NodeHeartbeat(store: store, node: NodeInfo(
                id: engine.nodeID, role: role, workers: engine.workers, startedAt: now, heartbeatAt: now)))
        }
        // The store's events (enqueues, retries, hand-backs, cancels; every node's on
        // PostgreSQL) wake the workers, polling stays the fallback; commits that changed
        // records wake the change feed's waiting readers (on every node, with workers or not).
        services.append(StoreEventRelay(source: store, workers: engine.workers > 0 ? pool : nil, changes: self.server.env.changes))
        engineServices = services
    }

    /// The Hummingbird application: the store first (the group stops services in reverse
    /// order, so its connections outlive everything that uses them), the engine, the server.
    /// The engine's services start once the server listens (``ListeningGate``): a node that
    /// cannot bind its port claims nothing before it stops. (`engineAfterListening: false` is
    /// for tests that serve requests without a listening server.)
    public func application(logger: Logger, engineAfterListening: Bool = true,
                            onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let gate = ListeningGate()
        let gated: [any Service] = engineAfterListening ? engineServices.map { AfterListening(gate: gate, service: $0) } : engineServices
        return server.buildApplication(services: [store] + gated, logger: logger) { port in
            gate.open()
            await onListening(port)
        }
    }
}
