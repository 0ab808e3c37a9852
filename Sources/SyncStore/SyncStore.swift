import Foundation
import SyncCore

/// The persistence of Tributary: sources, the durable queue of syncs, leases,
/// checkpoints and the record store.
///
/// Every invariant of DESIGN.md that concerns data lives behind this protocol
/// and is enforced by the database (unique indexes, CHECK constraints,
/// conditional writes), never by a check in Swift followed by a write. Two
/// implementations exist (SQLite, PostgreSQL); one conformance suite tests both.
public protocol SyncStore: Sendable {
    /// Brings the schema up to date. Safe to run twice and from several processes at once.
    /// Throws ``SchemaTooNewError`` for a database migrated by a newer Tributary.
    func migrate() async throws

    /// The schema version the database is at (0 before the first migration).
    func schemaVersion() async throws -> Int

    /// A cheap round trip, used by `/readyz`.
    func ping() async throws

    // MARK: Sources

    /// Inserts a source. Throws ``SyncStoreError/nameTaken(_:)`` if the name exists.
    func createSource(_ source: Source) async throws -> Source
    /// The source with this id, or else with this name.
    func source(idOrName: String) async throws -> Source?
    /// Sources ordered by id, after the given id.
    func listSources(limit: Int, after: String?) async throws -> [Source]
    /// The latest sync, latest finished sync and last success of a source.
    func summary(sourceID: String) async throws -> SourceSyncSummary
    /// Replaces a source's definition (not its state). Throws `nameTaken` or `notFound`.
    func updateSource(_ source: Source) async throws -> Source
    /// Deletes a source, its syncs and its records. Throws ``SyncStoreError/sourceInUse(activeSyncID:)``
    /// while a sync is active.
    func deleteSource(id: String) async throws

    // MARK: Syncs (intents from the API)

    /// Queues a new sync for a source: at most one non-terminal sync per source, enforced
    /// by a unique index (``SyncStoreError/syncAlreadyActive(activeSyncID:status:)``).
    func enqueue(_ request: EnqueueRequest) async throws -> EnqueueOutcome
    func sync(id: String) async throws -> Sync?
    /// Queues a sync (trigger `schedule`) for every source whose schedule is due and that has
    /// no active sync; returns the new sync ids. Safe on every node at once.
    func enqueueDueSchedules(now: Date) async throws -> [String]
    /// Syncs newest first (by id), before the given id.
    func listSyncs(_ filter: SyncFilter, limit: Int, before: String?) async throws -> [Sync]
    /// Cancels a queued or retrying sync at once; flags a running one with `cancel_requested`.
    func requestCancel(syncID: String, now: Date) async throws -> Sync
    /// Puts a failed or cancelled sync back in the queue with a fresh attempt budget.
    func retry(syncID: String, now: Date) async throws -> Sync

    // MARK: Workers (fenced by the lease)

    /// Claims the most urgent runnable sync for `owner` in one transaction.
    func claimNext(owner: String, leaseSeconds: Double, now: Date) async throws -> ClaimedSync?
    /// Claims up to `limit` runnable syncs, most urgent first, each with its own lease.
    func claimBatch(owner: String, leaseSeconds: Double, now: Date, limit: Int) async throws -> [ClaimedSync]
    /// Extends the lease; returns whether a cancel was requested. Throws ``SyncStoreError/leaseLost``.
    func heartbeat(_ lease: Lease, leaseSeconds: Double, now: Date) async throws -> Bool
    /// Whether a cancel was requested for the leased sync (a cheap read). Throws `leaseLost`.
    func isCancelRequested(_ lease: Lease) async throws -> Bool
    /// Commits one page: record upserts, record errors, progress counters and the
    /// checkpoint in ONE transaction (DESIGN.md invariant 2). Throws `leaseLost`.
    func commitPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress
    /// Commits the last page and completes the sync, atomically (the sync's `attempts` in the
    /// result may be left unloaded). Throws like ``commitPage(_:lease:now:)``.
    func completeWithFinalPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> Sync
    /// Ends the attempt with the given outcome. Throws `leaseLost`.
    func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync
    /// Returns running syncs whose lease expired to `queued` (or `cancelled` if a cancel
    /// was requested). Returns the ids it rescued.
    func rescueExpiredLeases(now: Date) async throws -> [String]
    /// The earliest time at which a retrying or queued sync becomes runnable, if any.
    func nextRunAt() async throws -> Date?

    // MARK: Nodes and health

    /// Records (or refreshes) a node of the cluster and its heartbeat.
    func registerNode(_ node: NodeInfo) async throws
    /// Refreshes a node's heartbeat (re-registering it if it was removed).
    func heartbeatNode(_ node: NodeInfo, now: Date) async throws
    /// Removes a node that stops gracefully.
    func removeNode(id: String) async throws
    /// What `/v1/health` reports: the queue, stuck syncs and the nodes.
    func healthSnapshot(now: Date) async throws -> HealthSnapshot

    // MARK: Records

    func records(sourceID: String, limit: Int, after: String?, includeDeleted: Bool) async throws -> [StoredRecord]
    func record(sourceID: String, key: String) async throws -> StoredRecord?
    func recordErrors(syncID: String, limit: Int, after: Int64?) async throws -> [(id: Int64, error: RecordError)]
}

extension SyncStore {
    /// One claim after another: right for SQLite, where a claim is a local write; PostgreSQL
    /// claims a batch in one statement.
    public func claimBatch(owner: String, leaseSeconds: Double, now: Date, limit: Int) async throws -> [ClaimedSync] {
        var claimed: [ClaimedSync] = []
        while claimed.count < limit, let next = try await claimNext(owner: owner, leaseSeconds: leaseSeconds, now: now) {
            claimed.append(next)
        }
        return claimed
    }
}

extension SyncStore {
    /// The last page, then the end of the attempt: two transactions, which is fine where a
    /// transaction is a local write (SQLite). A crash between them leaves a sync whose
    /// checkpoint says "done"; its next attempt completes it without reading a page.
    public func completeWithFinalPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> Sync {
        _ = try await commitPage(page, lease: lease, now: now)
        return try await finish(lease, outcome: .completed, now: now)
    }
}

/// A request to queue a sync.
public struct EnqueueRequest: Sendable {
    public var sourceID: String
    public var mode: SyncMode
    public var priority: Int
    public var trigger: SyncTrigger
    public var idempotencyKey: String?
    /// A fingerprint of the request body, compared when an idempotency key repeats.
    public var requestFingerprint: String
    public var now: Date

    public init(sourceID: String, mode: SyncMode, priority: Int, trigger: SyncTrigger, idempotencyKey: String? = nil, requestFingerprint: String = "", now: Date = Date()) {
        self.sourceID = sourceID
        self.mode = mode
        self.priority = priority
        self.trigger = trigger
        self.idempotencyKey = idempotencyKey
        self.requestFingerprint = requestFingerprint
        self.now = now
    }
}

/// What an enqueue did: created a sync, or replayed the one an idempotency key names.
public enum EnqueueOutcome: Sendable {
    case created(Sync)
    case replayed(Sync)

    public var sync: Sync {
        switch self {
        case .created(let s), .replayed(let s): s
        }
    }
}

/// Filters of `GET /v1/syncs`.
public struct SyncFilter: Sendable {
    public var sourceID: String?
    public var statuses: [SyncStatus]
    public var since: Date?
    public var until: Date?
    public init(sourceID: String? = nil, statuses: [SyncStatus] = [], since: Date? = nil, until: Date? = nil) {
        self.sourceID = sourceID
        self.statuses = statuses
        self.since = since
        self.until = until
    }
}

/// The fencing token of a claimed sync: every write a worker makes is conditional on it.
public struct Lease: Sendable, Hashable {
    public var syncID: String
    public var owner: String
    public var token: String
    public var attempt: Int
    public init(syncID: String, owner: String, token: String, attempt: Int) {
        self.syncID = syncID
        self.owner = owner
        self.token = token
        self.attempt = attempt
    }
}

/// A sync claimed by a worker, with its source and its lease.
public struct ClaimedSync: Sendable {
    public var sync: Sync
    public var source: Source
    public var lease: Lease
    public init(sync: Sync, source: Source, lease: Lease) {
        self.sync = sync
        self.source = source
        self.lease = lease
    }
}

/// One page to commit.
public struct PageCommit: Sendable {
    /// 1-based page number within the whole sync.
    public var pageNumber: Int
    public var records: [SourceRecord]
    public var recordErrors: [RecordError]
    public var bytesRead: Int
    /// Where the next page starts; `nil` when the source is exhausted.
    public var checkpoint: JSONValue?
    /// Keys to merge into the source's state (e.g. the incremental cursor), in the same transaction.
    public var sourceState: JSONObject?

    /// `records` may repeat a key: the page then holds its last occurrence, once, where the
    /// first occurrence stood (a key counts once per page; docs/sources.md, "Record keys").
    public init(pageNumber: Int, records: [SourceRecord], recordErrors: [RecordError] = [], bytesRead: Int, checkpoint: JSONValue?, sourceState: JSONObject? = nil) {
        self.pageNumber = pageNumber
        self.records = Self.lastOccurrences(records)
        self.recordErrors = recordErrors
        self.bytesRead = bytesRead
        self.checkpoint = checkpoint
        self.sourceState = sourceState
    }
}

extension PageCommit {
    /// The keys of the page's record errors: a full sync counts them as seen, so a record that
    /// only failed validation this time is kept, not deleted.
    public var recordErrorKeys: [String] { recordErrors.compactMap(\.recordKey) }

    static func lastOccurrences(_ records: [SourceRecord]) -> [SourceRecord] {
        var position: [String: Int] = [:]
        position.reserveCapacity(records.count)
        var out: [SourceRecord] = []
        out.reserveCapacity(records.count)
        for record in records {
            if let at = position[record.key] {
                out[at] = record
            } else {
                position[record.key] = out.count
                out.append(record)
            }
        }
        return out
    }
}

/// How an attempt ended.
public enum AttemptOutcome: Sendable, Equatable {
    /// All pages committed; in `full` mode, unseen records are marked deleted.
    case completed
    /// A retryable error with attempts left: wait until `nextRetryAt`.
    case retrying(SyncError, nextRetryAt: Date)
    /// A permanent error, or attempts exhausted; `cause` is the attempt's own error when it
    /// differs from the sync's (the sync says `attempts_exhausted`, the attempt what went wrong).
    case failed(SyncError, cause: SyncError? = nil)
    /// The client's cancel took effect.
    case cancelled
    /// Handed back (graceful shutdown): queued again at its last checkpoint, not counted as a failure.
    case released(reason: String)

    public var status: SyncStatus {
        switch self {
        case .completed: .completed
        case .retrying: .retrying
        case .failed: .failed
        case .cancelled: .cancelled
        case .released: .queued
        }
    }
}

/// The errors a store reports; the API maps each to one problem code.
public enum SyncStoreError: Error, Sendable, Equatable {
    case notFound(String)
    case nameTaken(String)
    case syncAlreadyActive(activeSyncID: String, status: SyncStatus)
    case invalidState(current: SyncStatus, message: String)
    case sourceInUse(activeSyncID: String)
    case rateLimited(retryAfterSeconds: Double)
    case idempotencyKeyReused
    /// The worker no longer holds the sync's lease: it must stop writing (DESIGN.md invariant 3).
    case leaseLost
    /// The database holds fewer pages than the worker committed: a commit it acknowledged
    /// was lost (a crash without synchronous commit, a failover to a lagging replica). The
    /// worker must resume from the stored checkpoint instead of writing past the gap.
    case checkpointBehind(storedPages: Int, page: Int)
    case illegalTransition(IllegalTransition)
    case unavailable(String)
}

/// What a source's syncs say about it: its latest sync, its latest finished one, its last success.
public struct SourceSyncSummary: Sendable {
    public var latest: Sync?
    public var latestFinished: Sync?
    public var lastCompletedAt: Date?

    public init(latest: Sync?, latestFinished: Sync?, lastCompletedAt: Date?) {
        self.latest = latest
        self.latestFinished = latestFinished
        self.lastCompletedAt = lastCompletedAt
    }

    public func health(schedule: Schedule?, now: Date) -> SourceHealth {
        SourceHealth.evaluate(latestFinished: latestFinished?.status, lastCompletedAt: lastCompletedAt, schedule: schedule, now: now)
    }
}

/// A `tributary serve` process sharing the database.
public struct NodeInfo: Sendable, Equatable {
    public var id: String
    public var role: String
    public var workers: Int
    public var startedAt: Date
    public var heartbeatAt: Date
    public init(id: String, role: String, workers: Int, startedAt: Date, heartbeatAt: Date) {
        self.id = id
        self.role = role
        self.workers = workers
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
    }
}

/// The queue and cluster as `/v1/health` sees them.
public struct HealthSnapshot: Sendable {
    public var queued: Int
    public var oldestQueuedAt: Date?
    public var running: Int
    /// Running syncs whose lease has expired (the rescuer has not taken them back yet).
    public var expiredLeases: Int
    public var nodes: [NodeInfo]
    /// Sources whose latest finished sync failed (``SourceHealth/failing``), at most 100.
    public var failingSources: [SourceRef]
    /// Scheduled sources with no completed sync within twice their interval (``SourceHealth/stale``), at most 100.
    public var staleSources: [SourceRef]
    public init(queued: Int, oldestQueuedAt: Date?, running: Int, expiredLeases: Int, nodes: [NodeInfo],
                failingSources: [SourceRef] = [], staleSources: [SourceRef] = []) {
        self.queued = queued
        self.oldestQueuedAt = oldestQueuedAt
        self.running = running
        self.expiredLeases = expiredLeases
        self.nodes = nodes
        self.failingSources = failingSources
        self.staleSources = staleSources
    }
}

/// A source named in a health report.
public struct SourceRef: Sendable, Equatable {
    public var id: String
    public var name: String
    public init(id: String, name: String) {
        self.id = id
        self.name = name
    }
}

/// The database was migrated by a newer Tributary than this one: running on it could
/// misread or damage what the newer version wrote, so the store refuses to start.
public struct SchemaTooNewError: Error, CustomStringConvertible, Sendable, Equatable {
    public let databaseVersion: Int
    public let supportedVersion: Int
    public init(databaseVersion: Int, supportedVersion: Int) {
        self.databaseVersion = databaseVersion
        self.supportedVersion = supportedVersion
    }
    public var description: String {
        "the database schema is at version \(databaseVersion), newer than this tributary knows (\(supportedVersion)): run a newer tributary"
    }
}

/// What one node tells the others through the database.
public enum StoreEvent: Sendable, Equatable {
    /// A sync became runnable: an idle worker should try to claim.
    case wake
    /// A client cancelled this running sync: the node running it should stop it.
    case cancelRequested(syncID: String)

    public init?(payload: String) {
        if payload == "wake" { self = .wake; return }
        if payload.hasPrefix("cancel:") { self = .cancelRequested(syncID: String(payload.dropFirst("cancel:".count))); return }
        return nil
    }
}

/// A store that pushes ``StoreEvent``s from other processes (PostgreSQL LISTEN/NOTIFY).
/// A push is only a hint that saves a poll: workers and running syncs still poll.
public protocol StoreEventSource: Sendable {
    /// Delivers events until the task is cancelled; throws when the listening connection drops.
    func listen(_ onEvent: @escaping @Sendable (StoreEvent) -> Void) async throws
}
