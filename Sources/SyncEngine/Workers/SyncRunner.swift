import Foundation
import Logging
import SyncConnectors
import SyncCore
import SyncStore

/// Runs one attempt of one claimed sync: reads pages, commits each with its
/// checkpoint, heartbeats the lease, watches for cancels, and records the outcome.
struct SyncRunner {
    let store: any WorkQueue
    let parents: any ParentRecords
    let kinds: SourceKindRegistry
    let configuration: EngineConfiguration
    let logger: Logger
    let random: @Sendable () -> Double
    let metrics: TributaryMetrics
    let budgets: RequestBudgets
    let credentials: CredentialBroker

    private enum Finished: Sendable {
        case pages(Result<Sync?, any Error>)
        case monitor(StopReason?)
    }

    /// Runs the attempt to its end and returns the sync as stored afterwards
    /// (`nil` if the lease was lost, in which case nothing was written).
    func run(_ claimed: ClaimedSync, control: RunControl) async -> Sync? {
        let lease = claimed.lease
        var logger = logger
        logger[metadataKey: "sync_id"] = .string(lease.syncID)
        logger[metadataKey: "source"] = .string(claimed.source.name)
        logger[metadataKey: "attempt"] = .stringConvertible(lease.attempt)
        logger.info("sync attempt started")

        let live = LiveSource(claimed.source)
        let pageResult: Result<Sync?, any Error> = await withTaskGroup(of: Finished.self) { group in
            group.addTask { .pages(await self.readAllPages(claimed, live: live)) }
            group.addTask { .monitor(await self.monitor(lease, control: control, live: live)) }
            var pages: Result<Sync?, any Error>?
            while let next = await group.next() {
                switch next {
                case .pages(let r):
                    pages = r
                    group.cancelAll()
                case .monitor(let reason):
                    if reason != nil { group.cancelAll() }
                }
            }
            return pages ?? .failure(CancellationError())
        }
        return await conclude(claimed, pageResult: pageResult, stopReason: control.stopReason, logger: logger)
    }

    /// Reads pages from the last checkpoint until the source is exhausted.
    private func readAllPages(_ claimed: ClaimedSync, live: LiveSource) async -> Result<Sync?, any Error> {
        do {
            if claimed.secretsUnreadable {
                throw SyncError(.configInvalid, "a secret of the source's config does not open (damaged, or sealed with a key this node was not given); "
                                + "give the source its secrets again, or start the node with every key (docs/credentials.md)", retryable: false)
            }
            guard let kind = kinds.kind(named: claimed.source.kind) else {
                throw SyncError(.sourceKindUnknown, "no source kind named \(claimed.source.kind) is registered on this node")
            }
            let source = try kind.makeSource(SourceContext(
                source: claimed.source, mode: claimed.sync.mode, syncID: claimed.sync.id, gate: budgets.gate(for: live),
                credential: claimed.source.credential.map { credentials.supplier(for: $0) }, parents: parents))
            let checkpoint = claimed.sync.checkpoint
            var pageNumber = claimed.sync.progress.pages
            var pageInAttempt = 1
            var counted = claimed.sync.progress
            // A stored checkpoint of JSON null means "the last page was committed".
            if pageNumber > 0, checkpoint == nil || checkpoint == .null { return .success(nil) }
            var page = try await source.readPage(PageRequest(checkpoint: checkpoint, pageInAttempt: 1, pageNumber: pageNumber.addingSaturated(1)))
            while true {
                try Task.checkCancellation()
                pageNumber = pageNumber.addingSaturated(1)
                let commit = PageCommit(
                    pageNumber: pageNumber, records: page.records, recordErrors: page.recordErrors,
                    bytesRead: page.bytesRead, checkpoint: page.next ?? .null, sourceState: page.sourceState)
                guard let next = page.next else {
                    // The last page and the end of the attempt in one write where the store can.
                    let done = try await whileUnavailable("complete with page \(pageNumber)") { [store] in
                        // Shielded from this task's cancellation: a stop that arrives while the
                        // completing write is in flight (the monitor seeing the lease end because
                        // the sync just completed, a cancel, a shutdown) must not turn a committed
                        // completion into an unknown outcome. The write's own fence decides.
                        try await Task { try await store.completeWithFinalPage(commit, lease: claimed.lease, now: Date()) }.value
                    }
                    metrics.committed(done.progress.minus(counted))
                    return .success(done)
                }
                // Fetch page N+1 while page N is written: at most one page ahead, so memory stays flat.
                pageInAttempt += 1
                let request = PageRequest(checkpoint: next, pageInAttempt: pageInAttempt, pageNumber: pageNumber.addingSaturated(1))
                async let upcoming = source.readPage(request)
                let progress = try await self.commit(commit, lease: claimed.lease)
                metrics.committed(progress.minus(counted))
                counted = progress
                page = try await upcoming
            }
        } catch {
            return .failure(error)
        }
    }

    /// Commits a page, retrying while the database is unreachable (a restart, a failover):
    /// a database that blinks must not fail the sync. The retry is safe because a page that
    /// already landed counts once. After two lease lengths it gives up with `unavailable`,
    /// and the attempt is handed back at its last checkpoint.
    private func commit(_ page: PageCommit, lease: Lease) async throws -> SyncProgress {
        try await whileUnavailable("commit page \(page.pageNumber)") {
            try await store.commitPage(page, lease: lease, now: Date())
        }
    }

    /// Runs `operation`, retrying with backoff (100 ms doubling to 2 s) for up to two lease
    /// lengths while it fails with ``SyncStoreError/unavailable(_:)``.
    private func whileUnavailable<T: Sendable>(_ what: String, _ operation: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(2 * configuration.leaseSeconds)
        var delay = Duration.milliseconds(100)
        while true {
            do {
                return try await operation()
            } catch SyncStoreError.unavailable(let reason) where ContinuousClock.now < deadline {
                logger.warning("database unavailable; will retry", metadata: ["operation": .string(what), "reason": .string(reason)])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    /// Heartbeats the lease and polls for a cancel until told to stop; returns why it stopped.
    /// Once a second (after the first) it also reads the source's stored request budget, so
    /// a PATCHed `rate_limit` reaches the running attempt's requests (``LiveSource``); a sync
    /// shorter than a second never pays that read.
    private func monitor(_ lease: Lease, control: RunControl, live: LiveSource) async -> StopReason? {
        var lastHeartbeat = ContinuousClock.now
        var lastBudgetRead = ContinuousClock.now
        let sourceID = live.current.id
        while !Task.isCancelled {
            await control.wake.wait(timeout: configuration.cancelCheckInterval)
            if Task.isCancelled { return control.stopReason }
            if let reason = control.stopReason { return reason }
            if ContinuousClock.now - lastBudgetRead >= .seconds(1) {
                lastBudgetRead = .now
                if let budget = try? await store.requestBudget(sourceID: sourceID) {
                    live.update(limit: budget.limit)
                }
            }
            do {
                let cancel: Bool
                if ContinuousClock.now - lastHeartbeat >= configuration.heartbeatInterval {
                    cancel = try await store.heartbeat(lease, leaseSeconds: configuration.leaseSeconds, now: Date())
                    lastHeartbeat = .now
                } else {
                    cancel = try await store.isCancelRequested(lease)
                }
                if cancel {
                    control.stop(.cancelRequested)
                    return control.stopReason
                }
            } catch SyncStoreError.leaseLost {
                control.stop(.leaseLost)
                return control.stopReason
            } catch {
                // A failed heartbeat is not fatal: the lease has slack (heartbeats come at a third of it).
                logger.warning("heartbeat failed: \(error)")
            }
        }
        return control.stopReason
    }

    /// Turns the page loop's result into the attempt's outcome and writes it, fenced by the lease.
    private func conclude(_ claimed: ClaimedSync, pageResult: Result<Sync?, any Error>, stopReason: StopReason?, logger: Logger) async -> Sync? {
        let outcome: AttemptOutcome
        switch (pageResult, stopReason) {
        case (.success(let done?), _):
            // Completed under our lease. The monitor may have seen the lease end a moment
            // later (the sync is no longer running) and said "lease lost": it is ours all the same.
            ended(done, kind: claimed.source.kind, logger: logger)
            return done
        case (_, .leaseLost), (.failure(SyncStoreError.leaseLost), _):
            logger.warning("lease lost; another node owns the sync now")
            return nil
        case (.success(nil), _):
            outcome = .completed
        case (.failure, .cancelRequested):
            outcome = .cancelled
        case (.failure, .shutdown):
            outcome = .released(reason: "handed back at its last checkpoint: graceful shutdown of node \(configuration.nodeID)")
        case (.failure(SyncStoreError.checkpointBehind(let stored, let page)), nil):
            outcome = .released(reason: "handed back: the database holds \(stored) pages but page \(page) followed a committed one (a lost commit); resuming from the stored checkpoint")
        case (.failure(let closed as GateClosed), nil):
            // The upstream asked for a pause longer than a request may wait: the sync goes back
            // to the queue at its checkpoint, to run when the key reopens, and no attempt fails,
            // up to retry.max_attempts such hand-backs. Past them a closure fails the attempt
            // like any 429, so the retry policy bounds an upstream that never reopens.
            let closures = claimed.sync.attempts.filter { $0.status == .queued && $0.error?.code == .upstreamRateLimited }.count
            if closures >= claimed.sync.maxAttempts {
                outcome = failureOutcome(claimed, error: SyncError(
                    .upstreamRateLimited, "the upstream kept the key closed through \(closures) hand-backs: \(closed)", retryable: true,
                    retryAfterSeconds: max(0, closed.until.timeIntervalSinceNow)))
            } else {
                outcome = .released(reason: "handed back at its last checkpoint: \(closed)", runAt: closed.until, code: .upstreamRateLimited)
            }
        case (.failure(SyncStoreError.unavailable(let reason)), nil):
            outcome = .released(reason: "handed back at its last checkpoint: the database was unavailable (\(reason))")
        case (.failure(let error), nil):
            outcome = failureOutcome(claimed, error: Self.syncError(error))
        }
        do {
            let sync = try await whileUnavailable("finish") {
                try await store.finish(claimed.lease, outcome: outcome, now: Date())
            }
            ended(sync, kind: claimed.source.kind, logger: logger)
            return sync
        } catch {
            logger.error("could not record the end of the attempt: \(error)")
            return nil
        }
    }

    /// Logs the end of an attempt, and counts the sync if it ended for good.
    func ended(_ sync: Sync, kind: String, logger: Logger) {
        if sync.status.isTerminal {
            metrics.syncFinished(status: sync.status.rawValue, kind: kind,
                                 seconds: sync.startedAt.flatMap { start in sync.finishedAt.map { $0.timeIntervalSince(start) } })
        }
        logger.info("sync attempt ended", metadata: [
            "status": .string(sync.status.rawValue),
            "records_read": .stringConvertible(sync.progress.recordsRead),
        ])
    }

    /// Retrying with the policy's delay while attempts remain, else failed.
    func failureOutcome(_ claimed: ClaimedSync, error: SyncError) -> AttemptOutcome {
        guard error.retryable else { return .failed(error) }
        let failed = claimed.sync.failedAttempts.addingSaturated(1)
        guard failed < claimed.sync.maxAttempts else {
            var exhausted = SyncError(.attemptsExhausted, "gave up after \(failed) failed attempts; last error: \(error.code.rawValue): \(error.message)", retryable: false)
            exhausted.httpStatus = error.httpStatus
            return .failed(exhausted, cause: error)
        }
        let delay = claimed.source.retry.delay(afterFailedAttempts: failed, retryAfter: error.retryAfterSeconds, random: random)
        // After a 429 or 503 the next attempt waits a second at least, even under max_delay_seconds 0.
        return .retrying(error, nextRetryAt: Date().addingTimeInterval(max(delay, UpstreamClient.rateLimitFloor(error))))
    }

    static func syncError(_ error: any Error) -> SyncError {
        if let e = error as? SyncError { return e }
        if error is CancellationError { return SyncError(.internalError, "the attempt was interrupted", retryable: true) }
        return SyncError(.internalError, "unexpected error: \(type(of: error))", retryable: true)
    }
}
