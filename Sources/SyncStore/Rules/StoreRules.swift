import Foundation
import SyncCore

/// The rules the drivers' hot paths share with ``DatabaseStore``: transitions, the order
/// of pages, the queue's vocabulary, and the texts a store writes.
enum StoreRules {
    /// Statuses a worker may claim: the claim statements, the next run time and the
    /// `syncs_claim_order` partial index of both schemas all use this one list.
    static let runnableStatuses: [SyncStatus] = [.queued, .retrying]
    static let runnable = runnableStatuses.map(\.rawValue)

    /// Fair priorities with aging (docs/queue.md): a waiting sync gains one priority level
    /// per `agingSecondsPerPriority` seconds since it became runnable. Claims take the
    /// runnable sync with the smallest `run_at − priority × 60`, so a sync of priority p
    /// runnable at t goes before every sync of priority q that becomes runnable after
    /// t + (q − p) × 60 s: none waits forever behind a stream of more urgent ones.
    static let agingSecondsPerPriority = 60
    /// The claim order as an expression, the same text in the claims and in the index
    /// `syncs_claim_order` of both schemas (so each database walks the index).
    static let claimOrder = "(run_at - priority * \(agingSecondsPerPriority).0)"

    /// Concurrency keys (docs/queue.md): a sync with a key is claimable only while fewer than
    /// its limit of the key's syncs run. Part of every claim's condition (a blocked sync is
    /// passed over, never in the way of the ones behind it); on PostgreSQL a trigger checks
    /// it again under a lock on the key, since two nodes may claim at once.
    static let concurrencyAllows = """
        (concurrency_key IS NULL OR concurrency_limit > (SELECT count(*) FROM syncs AS r
            WHERE r.concurrency_key = syncs.concurrency_key AND r.status = 'running'))
        """

    /// Whether any runnable sync is due at `now` (an SQL expression): one seek in
    /// `syncs_next_run`, which SQLite's claim checks before it walks `syncs_claim_order`.
    /// Without it a claim with nothing due read every waiting sync in claim order, checking
    /// each one's `run_at` (10,000 syncs queued for later: 1.4 ms per claim, holding the write
    /// lock; enqueue → running p50 0.37 → 1.1–1.6 ms). Not on PostgreSQL: there the seek walks
    /// the index entries of syncs just claimed (dead until vacuum) and cost the queue drain
    /// about 10 % (90 more buffer reads per claim), more than it saved idle claims.
    static func someDue(at now: String) -> String {
        "EXISTS (SELECT 1 FROM syncs WHERE \(RateLimits.nextRunCondition) AND run_at <= \(now))"
    }

    /// The attempt error of a sync taken back from a worker that stopped heartbeating.
    static let leaseExpired = SyncError(.internalError, "lease expired: the worker stopped heartbeating", retryable: true)

    /// A transition the state machine forbids is a bug: refused before anything is written.
    static func checked(from: SyncStatus, to: SyncStatus) throws {
        do { try SyncTransition.validate(from: from, to: to) } catch { throw SyncStoreError.illegalTransition(error) }
    }

    /// Where a page stands against the pages the database holds for the sync.
    enum PageOrder {
        /// The page that follows the stored ones: write it.
        case next
        /// Already in (a retried commit whose first COMMIT did land): counts once, write nothing.
        case alreadyCommitted
        /// The database holds fewer pages than the worker committed: an acknowledged commit
        /// was lost. The worker must resume from the stored checkpoint.
        case behind(SyncStoreError)
    }

    static func order(of page: Int, storedPages: Int) -> PageOrder {
        if storedPages >= page { return .alreadyCommitted }
        if storedPages < page - 1 { return .behind(.checkpointBehind(storedPages: storedPages, page: page)) }
        return .next
    }
}
