import Foundation
import Logging
import ServiceLifecycle
import SyncCore
import SyncStore

/// Hands the store's events to this node's workers (the engine's one wake path): `wake` →
/// an idle worker claims at once; `cancel` → the sync stops now rather than at its next
/// database check. SQLite's events come from this process, PostgreSQL's from every node.
/// When the listening connection drops it reconnects with a short backoff; while it is
/// down, nothing is lost, only slower (workers poll, running syncs poll for cancels).
public struct StoreEventRelay: Service {
    let source: any StoreEventSource
    let workers: WorkerPool?
    let changes: ChangeSignal?
    let logger: Logger

    /// - Parameters:
    ///   - workers: this node's workers (`nil` on a node without any).
    ///   - changes: wakes the change feed's waiting readers of a source whose records a commit changed.
    public init(source: any StoreEventSource, workers: WorkerPool?, changes: ChangeSignal? = nil,
                logger: Logger = Logger(label: "tributary.events")) {
        self.source = source
        self.workers = workers
        self.changes = changes
        self.logger = logger
    }

    public func run() async throws {
        let workers = workers, changes = changes
        await cancelWhenGracefulShutdown {
            var backoff = Duration.milliseconds(100)
            while !Task.isCancelled {
                do {
                    try await source.listen { event in
                        switch event {
                        case .wake: workers?.wakeUp.signal()
                        case .cancelRequested(let id): workers?.cancelLocally(syncID: id)
                        case .recordsChanged(let id): changes?.signal(sourceID: id)
                        }
                    }
                    backoff = .milliseconds(100)
                } catch {
                    if Task.isCancelled { return }
                    logger.warning("listening for events failed; retrying: \(error)")
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }
}
