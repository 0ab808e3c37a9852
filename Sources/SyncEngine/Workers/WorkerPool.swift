import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import SyncConnectors
import SyncCore
import SyncStore

/// What a node's workers use of the store: the queue, request budgets, the cluster's
/// registry, credentials, and the record store that child streams read their parents from.
public typealias WorkerStore = WorkQueue & RateLimitStore & ClusterRegistry & CredentialVault & RecordReader & SourceCatalog

/// The node's workers: up to `workers` syncs at once, claimed in batches as workers free up.
///
/// A `Service`: on graceful shutdown it stops claiming, stops its running syncs
/// at their last committed checkpoint and hands them back as `queued`
/// (docs/architecture.md invariant 5), then returns.
public final class WorkerPool: Service, WorkerStatus, Sendable {
    let store: any WorkerStore
    let kinds: SourceKindRegistry
    let configuration: EngineConfiguration
    let logger: Logger
    /// Signalled by ``StoreEventRelay`` when a sync becomes runnable, and when a worker frees up.
    public let wakeUp: WakeUpSignal
    private let running = Mutex<[String: RunControl]>([:])
    private let shuttingDown = Mutex(false)
    private let random: @Sendable () -> Double
    let metrics: TributaryMetrics

    public init(
        store: any WorkerStore, kinds: SourceKindRegistry, configuration: EngineConfiguration,
        wakeUp: WakeUpSignal = WakeUpSignal(), logger: Logger = Logger(label: "tributary.workers"),
        metrics: TributaryMetrics = .discarding(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.metrics = metrics
        self.store = store
        self.kinds = kinds
        self.configuration = configuration
        self.wakeUp = wakeUp
        self.logger = logger
        self.random = random
        budgets = RequestBudgets(store: store)
        // Token endpoints are asked through the http-json kind's client: the node's egress policy.
        let client = (kinds.kind(named: "http-json") as? HTTPJSONSourceKind)?.client
        credentials = CredentialBroker(store: store, endpoint: client.map { OAuth2TokenEndpoint(client: $0) },
                                       nodeID: configuration.nodeID, logger: logger)
    }
    /// The authorization of sources' credentials, and their OAuth2 refreshes.
    let credentials: CredentialBroker
    /// This node's gates onto the request budgets of the sources' keys.
    let budgets: RequestBudgets
    private let drain = Mutex<(draining: Bool, checkedAt: ContinuousClock.Instant?)>((false, nil))

    /// Whether this node was told to stop claiming (`POST /v1/nodes/{id}/drain`), read from
    /// the database at most once a second.
    func isDrained() async throws -> Bool {
        let now = ContinuousClock.now
        if let known = drain.withLock({ d in d.checkedAt.map { now - $0 < .seconds(1) } == true ? d.draining : nil }) { return known }
        let draining = try await store.isDraining(nodeID: configuration.nodeID)
        drain.withLock { $0 = (draining, now) }
        return draining
    }

    /// Whether this node is draining, as last read.
    public var isDraining: Bool { drain.withLock { $0.draining } }

    /// Whether the pool is running (for `/readyz`): true until shutdown begins.
    public var isAcceptingWork: Bool { !shuttingDown.withLock { $0 } && configuration.workers > 0 }

    /// How many workers this node was configured with.
    public var configuredWorkers: Int { configuration.workers }

    /// How many syncs this node runs right now.
    public var runningCount: Int { running.withLock { $0.count } }

    public func run() async throws {
        guard configuration.workers > 0 else {
            // Nothing to run; stay up until shutdown so the service group keeps going.
            try? await gracefulShutdown()
            return
        }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                let runner = SyncRunner(store: store, parents: StoreParentRecords(store: store), kinds: kinds, configuration: configuration,
                                        logger: logger, random: random, metrics: metrics,
                                        budgets: budgets, credentials: credentials)
                // One dispatcher claims as many syncs as there are free workers, in one round trip
                // on PostgreSQL (a claim per sync was the queue's ceiling: docs/benchmarks.md), and
                // starts each at once: a claimed sync never waits unleased-in-spirit in a buffer.
                while !isShuttingDown && !Task.isCancelled {
                    let free = configuration.workers - runningCount
                    guard free > 0 else {
                        await wakeUp.wait(timeout: configuration.pollInterval)
                        continue
                    }
                    do {
                        if try await isDrained() {
                            await wakeUp.wait(timeout: configuration.pollInterval)
                            continue
                        }
                        let now = Date()
                        let claimed = try await store.claimBatch(
                            owner: configuration.nodeID, leaseSeconds: configuration.leaseSeconds, now: now,
                            limit: min(free, Self.maximumBatch))
                        guard !claimed.isEmpty else {
                            await wakeUp.wait(timeout: Self.idleWait(until: try await store.nextRunAt(), claimedAt: now,
                                                                     pollInterval: configuration.pollInterval))
                            continue
                        }
                        for sync in claimed {
                            let control = RunControl()
                            running.withLock { $0[sync.lease.syncID] = control }
                            // Shutdown may have begun between the claim and the registration.
                            if isShuttingDown { control.stop(.shutdown) }
                            group.addTask {
                                _ = await runner.run(sync, control: control)
                                self.running.withLock { _ = $0.removeValue(forKey: sync.lease.syncID) }
                                self.wakeUp.signal()
                            }
                        }
                    } catch {
                        logger.error("claim failed: \(error)")
                        await wakeUp.wait(timeout: configuration.pollInterval)
                    }
                }
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
    }

    /// The most syncs one claim takes.
    static let maximumBatch = 32

    /// Stops claiming and hands running syncs back. Called on graceful shutdown; callable directly.
    public func beginShutdown() {
        shuttingDown.withLock { $0 = true }
        for control in running.withLock({ Array($0.values) }) { control.stop(.shutdown) }
        // Wake the dispatcher so it sees the flag.
        wakeUp.signal()
    }

    /// Asks this node to stop a sync it runs because a client cancelled it; the
    /// database already says `cancel_requested`. Returns whether the sync runs here.
    @discardableResult
    public func cancelLocally(syncID: String) -> Bool {
        guard let control = running.withLock({ $0[syncID] }) else { return false }
        control.stop(.cancelRequested)
        return true
    }

    private var isShuttingDown: Bool { shuttingDown.withLock { $0 } }

    /// How long to sleep when a claim found nothing: until the next sync is due, at most the
    /// poll interval. A sync that was already due when the claim ran and was not claimed is
    /// waiting for something a clock does not bring (its concurrency key is full, another
    /// node holds its row): the dispatcher then waits for a wake-up or the poll interval
    /// instead of claiming again at once (it used to spin, a claim a millisecond, while a
    /// concurrency key stayed full).
    static func idleWait(until next: Date?, claimedAt: Date, pollInterval: Duration) -> Duration {
        guard let next, next > claimedAt else { return pollInterval }
        let seconds = next.timeIntervalSinceNow
        // Compared as seconds before any conversion: a far-future or non-finite time must not trap.
        guard seconds.isFinite, seconds < pollInterval.inSeconds else { return pollInterval }
        return .milliseconds(Int(max(0.001, seconds) * 1000))
    }
}
