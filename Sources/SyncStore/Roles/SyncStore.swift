import Foundation
import ServiceLifecycle
import SyncCore

/// The persistence of Tributary: sources, the durable queue of syncs, leases,
/// checkpoints and the record store, as the roles its callers play.
///
/// Each caller depends on the role it uses: the API on ``APIStore`` (readers, requests,
/// history and the cluster's health, never a worker's or a maintenance service's write); a
/// worker on ``WorkQueue``; the scheduler and the lease rescuer on ``QueueMaintenance``;
/// a node on ``ClusterRegistry``. One implementation,
/// ``DatabaseStore``, writes every rule once over a driver per database (SQLite,
/// PostgreSQL); every invariant of docs/architecture.md that concerns data is enforced by
/// the database (unique indexes, CHECK constraints, conditional writes), never by a check
/// in Swift followed by an unguarded write. One conformance suite tests both databases.
public typealias SyncStore = StoreLifecycle & SourceCatalog & SyncRequests & WorkQueue & QueueMaintenance
    & RecordReader & ClusterRegistry & ClusterControl & StoreEventSource & SyncHistory & SyncWatching & WebhookOutbox
    & DeliveryLog & RateLimitStore & DashboardReader & CredentialVault

/// What the API works with: what clients read and ask for, the history, and the cluster's
/// health and drain switches. A route cannot claim a sync, write a page or take a lease.
public typealias APIStore = SourceCatalog & SyncRequests & RecordReader & ClusterControl & SyncHistory & SyncWatching
    & DeliveryLog & DashboardReader & CredentialVault

/// Opening, migrating and closing the database.
public protocol StoreLifecycle: Service, Sendable {
    /// Brings the schema up to date. Safe to run twice and from several processes at once.
    /// Throws ``SchemaTooNewError`` for a database migrated by a newer Tributary.
    func migrate() async throws
    /// The schema version the database is at (0 before the first migration).
    func schemaVersion() async throws -> Int
    /// Runs the store's connections until graceful shutdown or cancellation: a node runs
    /// it as the first service of its group, so it stops after everything that uses it.
    func run() async throws
    /// Ends ``run()``, or the connections a store started for itself (``DatabaseStore/start()``).
    func close() async
}

/// Sources: their definitions and what their syncs say about them.
public protocol SourceCatalog: Sendable {
    /// Inserts a source. Throws ``SyncStoreError/nameTaken(_:)`` if the name exists.
    func createSource(_ source: Source) async throws -> Source
    /// The source with this id, or else with this name.
    func source(idOrName: String) async throws -> Source?
    /// ``source(idOrName:)`` with its summary, read together.
    func sourceView(idOrName: String) async throws -> SourceView?
    /// Sources with their summaries ordered by id, after the given id; only paused (or only
    /// running) ones if `paused` says. One statement whatever the page size.
    func sourceViews(limit: Int, after: String?, paused: Bool?) async throws -> [SourceView]
    /// The latest sync, latest finished sync, last success and closed request budget of a source.
    func summary(sourceID: String) async throws -> SourceSyncSummary
    /// ``summary(sourceID:)`` of many sources in one statement.
    func summaries(sourceIDs: [String]) async throws -> [String: SourceSyncSummary]
    /// Pauses (not scheduled, not claimed) or resumes a source. Throws `notFound`.
    func setPaused(sourceID: String, paused: Bool, now: Date) async throws -> Source
    /// Replaces a source's definition, and removes the keys of its saved state the new
    /// definition makes meaningless (`clearingState`). Throws `nameTaken` or `notFound`.
    func updateSource(_ source: Source, clearingState: [String]) async throws -> Source
    /// Clears a source's saved state and/or marks its live records deleted, kept in its
    /// history of resets. Throws `notFound`, or ``SyncStoreError/sourceInUse(activeSyncID:)``
    /// while a sync is active.
    func resetSource(sourceID: String, state: Bool, records: Bool, trigger: SyncTrigger, now: Date) async throws -> SourceReset
    /// A source's resets, newest first, before the given id.
    func resets(sourceID: String, limit: Int, before: String?) async throws -> [SourceReset]
    /// Deletes a source, its syncs and its records. Throws ``SyncStoreError/sourceInUse(activeSyncID:)``
    /// while a sync is active.
    func deleteSource(id: String) async throws
}

/// The queue as clients see it: what they ask for, and what they read back.
public protocol SyncRequests: Sendable {
    /// Queues a new sync for a source: at most one non-terminal sync per source, enforced
    /// by a unique index (``SyncStoreError/syncAlreadyActive(activeSyncID:status:)``).
    func enqueue(_ request: EnqueueRequest) async throws -> EnqueueOutcome
    func sync(id: String) async throws -> Sync?
    /// Syncs newest first (by id), before the given id.
    func listSyncs(_ filter: SyncFilter, limit: Int, before: String?) async throws -> [Sync]
    /// Cancels a queued or retrying sync at once; flags a running one with `cancel_requested`
    /// and tells the node running it (``StoreEvent/cancelRequested(syncID:)``).
    func requestCancel(syncID: String, now: Date) async throws -> Sync
    /// ``requestCancel(syncID:now:)``, and whether this call is the one that changed the sync
    /// (of calls racing for one sync, exactly one is).
    func cancel(syncID: String, now: Date) async throws -> (sync: Sync, changed: Bool)
    /// ``cancel(syncID:now:)`` for many syncs in one transaction (a bulk cancel's batch), each
    /// under the same rules: answers the syncs this call changed. Ended ones are skipped.
    func cancel(syncIDs: [String], now: Date) async throws -> [CancelledSync]
    /// Puts a failed or cancelled sync back in the queue with a fresh attempt budget.
    func retry(syncID: String, now: Date) async throws -> Sync
}

/// The queue as workers see it; every write is fenced by the lease.
public protocol WorkQueue: Sendable {
    /// The source's request budget as stored now (`rate_limit` and its key), for a running
    /// attempt to follow a PATCH; `nil` if the source is gone.
    func requestBudget(sourceID: String) async throws -> (limit: RateLimit?, key: String)?
    /// Claims up to `limit` runnable syncs, most urgent first, each with its own lease.
    func claimBatch(owner: String, leaseSeconds: Double, now: Date, limit: Int) async throws -> [ClaimedSync]
    /// Extends the lease; returns whether a cancel was requested. Throws ``SyncStoreError/leaseLost``.
    func heartbeat(_ lease: Lease, leaseSeconds: Double, now: Date) async throws -> Bool
    /// Whether a cancel was requested for the leased sync (a cheap read). Throws `leaseLost`.
    func isCancelRequested(_ lease: Lease) async throws -> Bool
    /// Commits one page: record upserts, record errors, progress counters and the
    /// checkpoint in ONE transaction (invariant 2). Throws `leaseLost`.
    func commitPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress
    /// Commits the last page and completes the sync, atomically where the database allows it
    /// (the sync's `attempts` in the result may be left unloaded). Throws like ``commitPage(_:lease:now:)``.
    func completeWithFinalPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> Sync
    /// Ends the attempt with the given outcome. Throws `leaseLost`.
    func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync
    /// The earliest time at which a retrying or queued sync becomes runnable, if any.
    func nextRunAt() async throws -> Date?
}

extension WorkQueue {
    /// Claims the most urgent runnable sync, if any.
    public func claimNext(owner: String, leaseSeconds: Double, now: Date) async throws -> ClaimedSync? {
        try await claimBatch(owner: owner, leaseSeconds: leaseSeconds, now: now, limit: 1).first
    }
}

/// What keeps the queue moving without a client: schedules and expired leases.
public protocol QueueMaintenance: Sendable {
    /// Queues a sync (trigger `schedule`) for every source whose schedule is due and that has
    /// no active sync; returns the new sync ids. Safe on every node at once.
    func enqueueDueSchedules(now: Date) async throws -> [String]
    /// Returns running syncs whose lease expired to `queued` (or `cancelled` if a cancel
    /// was requested). Returns the ids it rescued.
    func rescueExpiredLeases(now: Date) async throws -> [String]
    /// Sources with a cron schedule whose next slot is due (or not computed yet), not paused.
    func dueCronSources(now: Date) async throws -> [Source]
    /// Takes a cron slot for one scheduler of many (see ``DatabaseStore/takeCronSlot(sourceID:slot:next:enqueue:runAt:now:)``).
    func takeCronSlot(sourceID: String, slot: Date?, next: Date?, enqueue: Bool, runAt: Date, now: Date) async throws -> CronSlotOutcome
}

/// The record store and the errors of records that could not be stored.
public protocol RecordReader: Sendable {
    func records(sourceID: String, limit: Int, after: String?, includeDeleted: Bool) async throws -> [StoredRecord]
    func record(sourceID: String, key: String) async throws -> StoredRecord?
    func recordErrors(syncID: String, limit: Int, after: Int64?) async throws -> [(id: Int64, error: RecordError)]
    /// The source's records whose last change is numbered after `after`, in change order
    /// (only those of `op` when given), with the feed's head and floor.
    func changes(sourceID: String, after: Int64, limit: Int, op: ChangeOp?) async throws -> ChangePage
    /// The source's `limit` most recent changes, newest first, with the feed's head and floor.
    func latestChanges(sourceID: String, limit: Int) async throws -> ChangePage
}

/// The nodes sharing the database, as a node keeps its own entry.
public protocol ClusterRegistry: Sendable {
    /// Records (or refreshes) a node of the cluster and its heartbeat.
    func registerNode(_ node: NodeInfo) async throws
    /// Refreshes a node's heartbeat (re-registering it if it was removed).
    func heartbeatNode(_ node: NodeInfo, now: Date) async throws
    /// Removes a node that stops gracefully.
    func removeNode(id: String) async throws
    /// Whether this node was told to stop claiming.
    func isDraining(nodeID: String) async throws -> Bool
}

/// The cluster as operators see it: whether the database answers, the health of the queue,
/// the sources and the nodes, and the switch that drains a node.
public protocol ClusterControl: Sendable {
    /// A cheap round trip, used by `/readyz`.
    func ping() async throws
    /// What `/v1/health` reports: the queue, stuck syncs and the nodes.
    func healthSnapshot(now: Date) async throws -> HealthSnapshot
    /// Tells a node to stop (or resume) claiming; `notFound` for an unknown node.
    func setDraining(nodeID: String, draining: Bool) async throws -> NodeInfo
}

/// The history of syncs: what it says (statistics) and how long it is kept (retention).
public protocol SyncHistory: Sendable {
    /// The figures of `GET /v1/stats` for the syncs that finished within the last
    /// `window` seconds, computed by the database.
    func statistics(window: Double, now: Date) async throws -> SyncStatistics
    /// Deletes the terminal syncs the policy lets go (with their attempts, record errors
    /// and idempotency keys; records stay), in small transactions; never an active sync.
    /// Safe on every node at once. Returns how many syncs it deleted.
    func prune(_ policy: RetentionPolicy, now: Date) async throws -> Int
}

/// What the dashboard reads beside the API's reads: finished syncs over time, source names
/// and record counts for a page of rows, each in one query whatever the page's size.
public protocol DashboardReader: Sendable {
    /// Syncs that finished at or after `since`, counted per status in buckets of
    /// `bucketSeconds` (bucket `i` starts at `since + i × bucketSeconds`); empty buckets left out.
    func finishedBuckets(since: Date, bucketSeconds: Double) async throws -> [FinishedBucket]
    /// The names of these sources (unknown ids left out).
    func sourceNames(ids: [String]) async throws -> [String: String]
    /// How many live (not deleted) records each of these sources holds.
    func recordCounts(sourceIDs: [String]) async throws -> [String: Int]
    /// A page of a source's live records by key, each with at most its first `prefixBytes`
    /// bytes and its full size: what a page of them costs does not grow with record size.
    func recordPreviews(sourceID: String, limit: Int, after: String?, prefixBytes: Int) async throws -> [RecordPreview]
}

/// The start of a stored record, for people to look at (``DashboardReader/recordPreviews(sourceID:limit:after:prefixBytes:)``).
public struct RecordPreview: Sendable, Equatable {
    public var key: String
    /// The record's first bytes (all of them when ``size`` is no larger).
    public var prefix: [UInt8]
    /// The record's size in bytes.
    public var size: Int
    public var updatedAt: Date
    public var syncID: String?

    public init(key: String, prefix: [UInt8], size: Int, updatedAt: Date, syncID: String?) {
        self.key = key
        self.prefix = prefix
        self.size = size
        self.updatedAt = updatedAt
        self.syncID = syncID
    }
}

/// One bucket of ``DashboardReader/finishedBuckets(since:bucketSeconds:)``.
public struct FinishedBucket: Sendable, Equatable {
    public var index: Int
    public var completed = 0, failed = 0, cancelled = 0

    public init(index: Int, completed: Int = 0, failed: Int = 0, cancelled: Int = 0) {
        self.index = index
        self.completed = completed
        self.failed = failed
        self.cancelled = cancelled
    }
}

/// What live views (server-sent events) read: a few syncs by id, and what is moving.
public protocol SyncWatching: Sendable {
    /// These syncs as stored now, without their attempts (missing ids are left out).
    func syncs(ids: [String]) async throws -> [Sync]
    /// The syncs a view of everything must look at: every running sync, and the syncs
    /// created or finished at or after `since` (at most `limit` of each, newest first),
    /// optionally of one source. Without their attempts.
    func syncActivity(since: Date, sourceID: String?, limit: Int) async throws -> [Sync]
}

extension SourceCatalog {
    /// Sources with their summaries ordered by id, after the given id.
    public func sourceViews(limit: Int, after: String?) async throws -> [SourceView] {
        try await sourceViews(limit: limit, after: after, paused: nil)
    }

    /// Replaces a source's definition; its saved state stays as it is.
    public func updateSource(_ source: Source) async throws -> Source {
        try await updateSource(source, clearingState: [])
    }
}

/// The outbox of webhook deliveries (docs/webhooks.md): filled by the database in the
/// transaction that changes a sync's status; emptied by the nodes' delivery services.
public protocol WebhookOutbox: Sendable {
    /// Takes up to `limit` due deliveries under a lease of `leaseSeconds`, counting the try,
    /// each with its sync's snapshot and its source's name.
    func claimDeliveries(owner: String, leaseSeconds: Double, now: Date, limit: Int,
                         perReceiver: Int, excludingReceivers: [String]) async throws -> [WebhookDelivery]
    /// Writes what a try came to, and the body it sent if none was fixed yet; `false` when
    /// the lease was lost meanwhile (nothing written).
    func recordTry(_ delivery: WebhookDelivery, owner: String, body: [UInt8], result: WebhookTryResult, now: Date) async throws -> Bool
}

/// What clients read of the outbox.
public protocol DeliveryLog: Sendable {
    /// A sync's deliveries, oldest first (no snapshots).
    func deliveries(syncID: String) async throws -> [WebhookDelivery]
}

/// Request budgets and closures shared by every node (docs/queue.md, "Rate limits").
public protocol RateLimitStore: Sendable {
    /// Asks the key's budget for up to `count` requests (at most the burst).
    func takeTokens(key: String, count: Int, limit: RateLimit, now: Date) async throws -> RateGrant
    /// When the key reopens, if an upstream closed it and it is still closed.
    func closedUntil(key: String, now: Date) async throws -> Date?
    /// Closes the key until then on every node; its waiting syncs are not claimed meanwhile.
    func closeKey(_ key: String, until: Date, now: Date) async throws
}
