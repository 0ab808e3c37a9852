import Foundation
import SyncConnectors
import SyncCore
import SyncEngine
import SyncStore

/// What the routes work with: the store, the known source kinds, and (when this
/// node runs workers) the worker pool, to wake it on enqueue and to cancel locally.
public struct APIEnvironment: Sendable {
    public var store: any SyncStore
    public var kinds: SourceKindRegistry
    public var workers: WorkerPool?
    public var maxBodyBytes: Int

    public init(store: any SyncStore, kinds: SourceKindRegistry, workers: WorkerPool?, maxBodyBytes: Int = 1 << 20) {
        self.store = store
        self.kinds = kinds
        self.workers = workers
        self.maxBodyBytes = maxBodyBytes
    }

    func source(_ idOrName: String) async throws -> Source {
        guard let source = try await store.source(idOrName: idOrName) else { throw Problem.notFound("No source \(idOrName).") }
        return source
    }
}
