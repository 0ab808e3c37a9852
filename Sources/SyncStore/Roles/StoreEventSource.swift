import Foundation
import SyncCore

/// What the store tells the engine: a sync became runnable, a cancel was requested.
///
/// Every write that makes a sync runnable or asks a running one to stop publishes its event
/// when it commits: in process on SQLite, through `NOTIFY` on PostgreSQL (so every node
/// hears it, the writer's own included). An event is a hint that saves a poll: workers and
/// running syncs still poll, so a lost event only slows things down.
public protocol StoreEventSource: Sendable {
    /// Delivers events until the task is cancelled; throws when the listening connection drops.
    func listen(_ onEvent: @escaping @Sendable (StoreEvent) -> Void) async throws
}
