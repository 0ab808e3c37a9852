import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import SyncConnectors
import SyncCore
import SyncStore

/// The node's workers: each claims a runnable sync, runs one attempt, and claims again.
///
/// A `Service`: on graceful shutdown it stops claiming, stops its running syncs
/// at their last committed checkpoint and hands them back as `queued`
/// (DESIGN.md invariant 5), then returns.
public final class WorkerPool: Service, Sendable {
    let store: any SyncStore
    let kinds: SourceKindRegistry
    let configuration: EngineConfiguration
    let logger: Logger
    /// Signalled when a sync is queued on this node (or a retry becomes due).
    public let wakeUp: WakeUpSignal
    private let running = Mutex<[String: RunControl]>([:])
    private let shuttingDown = Mutex(false)
    private let random: @Sendable () -> Double

    public init(
        store: any SyncStore, kinds: SourceKindRegistry, configuration: EngineConfiguration,
        wakeUp: WakeUpSignal = WakeUpSignal(), logger: Logger = Logger(label: "tributary.workers"),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.store = store
        self.kinds = kinds
        self.configuration = configuration
        self.wakeUp = wakeUp
        self.logger = logger
        self.random = random
    }

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
                for index in 0..<configuration.workers {
                    group.addTask { await self.workerLoop(index) }
                }
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
    }

    /// Stops claiming and hands running syncs back. Called on graceful shutdown; callable directly.
    public func beginShutdown() {
        shuttingDown.withLock { $0 = true }
        for control in running.withLock({ Array($0.values) }) { control.stop(.shutdown) }
        // Wake every idle worker so it sees the flag (each wait consumes one signal).
        for _ in 0..<max(1, configuration.workers) { wakeUp.signal() }
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

    private func workerLoop(_ index: Int) async {
        var logger = logger
        logger[metadataKey: "worker"] = .stringConvertible(index)
        let runner = SyncRunner(store: store, kinds: kinds, configuration: configuration, logger: logger, random: random)
        while !isShuttingDown && !Task.isCancelled {
            do {
                // Claim first (one round trip); ask when the next sync is due only when there was none.
                if let claimed = try await store.claimNext(owner: configuration.nodeID, leaseSeconds: configuration.leaseSeconds, now: Date()) {
                    let control = RunControl()
                    running.withLock { $0[claimed.lease.syncID] = control }
                    // Shutdown may have begun between the claim and the registration.
                    if isShuttingDown { control.stop(.shutdown) }
                    _ = await runner.run(claimed, control: control)
                    running.withLock { _ = $0.removeValue(forKey: claimed.lease.syncID) }
                    continue
                }
                await wakeUp.wait(timeout: idleWait(until: try await store.nextRunAt()))
            } catch {
                logger.error("worker loop error: \(error)")
                await wakeUp.wait(timeout: configuration.pollInterval)
            }
        }
    }

    /// How long to sleep when nothing is runnable: until the next retry is due, at most the poll interval.
    private func idleWait(until next: Date?) -> Duration {
        guard let next else { return configuration.pollInterval }
        let seconds = max(0.001, next.timeIntervalSinceNow)
        return min(configuration.pollInterval, .milliseconds(Int(seconds * 1000)))
    }
}
