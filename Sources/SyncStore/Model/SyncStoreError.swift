import Foundation
import SyncCore

/// The errors a store reports; the API maps each to one problem code.
public enum SyncStoreError: Error, Sendable, Equatable {
    case notFound(String)
    case nameTaken(String)
    case syncAlreadyActive(activeSyncID: String, status: SyncStatus)
    case invalidState(current: SyncStatus, message: String)
    case sourceInUse(activeSyncID: String)
    case rateLimited(retryAfterSeconds: Double)
    case idempotencyKeyReused
    /// The worker no longer holds the sync's lease: it must stop writing (docs/architecture.md invariant 3).
    case leaseLost
    /// The database holds fewer pages than the worker committed: a commit it acknowledged
    /// was lost (a crash without synchronous commit, a failover to a lagging replica). The
    /// worker must resume from the stored checkpoint instead of writing past the gap.
    case checkpointBehind(storedPages: Int, page: Int)
    case illegalTransition(IllegalTransition)
    case unavailable(String)
    /// A value the database cannot store (PostgreSQL: U+0000 in text, or an escape `jsonb`
    /// refuses). The API refuses such values before they reach the store; this is the floor.
    case unstorable(String)
    /// A credential of that name exists.
    case credentialNameTaken(String)
    /// A credential that sources use cannot be deleted (the first of them, and how many).
    case credentialInUse(sourceID: String, sources: Int)
}
