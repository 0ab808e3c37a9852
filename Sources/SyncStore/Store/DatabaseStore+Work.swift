import Foundation
import SyncCore

extension DatabaseStore: WorkQueue {
    public func claimBatch(owner: String, leaseSeconds: Double, now: Date, limit: Int) async throws -> [ClaimedSync] {
        try await driver.claimBatch(owner: owner, leaseSeconds: leaseSeconds, now: now, limit: limit).map { claimed -> ClaimedSync in
            var claimed = claimed
            (claimed.source, claimed.secretsUnreadable) = keyring.openSecretsLeniently(of: claimed.source)
            return claimed
        }
    }

    public func heartbeat(_ lease: Lease, leaseSeconds: Double, now: Date) async throws -> Bool {
        let t = now.timeIntervalSince1970
        let rows = try await driver.execute("""
            UPDATE syncs SET heartbeat_at = \(t), lease_expires_at = \(t + leaseSeconds)
            WHERE id = \(lease.syncID) AND lease_token = \(lease.token) AND status = \(SyncStatus.running)
            RETURNING cancel_requested
            """)
        guard let row = rows.first(0) else { throw SyncStoreError.leaseLost }
        return try row.bool("cancel_requested")
    }

    public func isCancelRequested(_ lease: Lease) async throws -> Bool {
        let rows = try await driver.read(["""
            SELECT cancel_requested FROM syncs
            WHERE id = \(lease.syncID) AND lease_token = \(lease.token) AND status = \(SyncStatus.running)
            """])
        guard let row = rows.first(0) else { throw SyncStoreError.leaseLost }
        return try row.bool("cancel_requested")
    }

    public func commitPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress {
        try await driver.commitPage(page, lease: lease, now: now)
    }

    public func completeWithFinalPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> Sync {
        try await driver.completeWithFinalPage(page, lease: lease, now: now)
    }

    public func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync {
        try StoreRules.checked(from: .running, to: outcome.status)
        return try await driver.finish(lease, outcome: outcome, now: now)
    }

    /// The next time a sync becomes claimable, past or future: syncs held (paused) or blocked
    /// by their concurrency key are left out, as the claim leaves them out, so an idle worker
    /// does not claim again in a loop for a sync it cannot take; a past time means a sync
    /// another node was claiming at that moment (the worker tries again at once). Read as the
    /// first row of `syncs_next_run` in order, which stops at the first claimable sync (a
    /// `MIN` with this condition read the whole index on SQLite).
    public func nextRunAt() async throws -> Date? {
        let rows = try await driver.read([
            """
            SELECT run_at AS t FROM syncs
            WHERE \(raw: RateLimits.nextRunCondition) AND \(raw: StoreRules.concurrencyAllows)
            ORDER BY run_at LIMIT 1
            """,
        ])
        return RowCoding.date(try rows.first(0)?.optionalDouble("t"))
    }
}

extension DatabaseStore: RecordReader {
    public func records(sourceID: String, limit: Int, after: String?, includeDeleted: Bool) async throws -> [StoredRecord] {
        let rows = try await driver.read(["""
            \(raw: SyncRows.recordColumns)
            WHERE source_seq = (SELECT seq FROM sources WHERE id = \(sourceID)) AND key > \(after ?? "")
              \(raw: includeDeleted ? "" : "AND deleted_at IS NULL")
            ORDER BY key LIMIT \(limit)
            """])
        return try rows[0].map { try RowCoding.record($0) }
    }

    public func record(sourceID: String, key: String) async throws -> StoredRecord? {
        let rows = try await driver.read(["""
            \(raw: SyncRows.recordColumns)
            WHERE source_seq = (SELECT seq FROM sources WHERE id = \(sourceID)) AND key = \(key)
            """])
        return try rows.first(0).map { try RowCoding.record($0) }
    }

    public func changes(sourceID: String, after: Int64, limit: Int, op: ChangeOp?) async throws -> ChangePage {
        let filter = op.map { "AND " + ChangeFeed.condition(op: $0) } ?? ""
        return try await changePage(sourceID: sourceID, """
            \(raw: SyncRows.recordColumns)
            WHERE records.source_seq = (SELECT seq FROM sources WHERE id = \(sourceID)) AND records.change_seq > \(after) \(raw: filter)
            ORDER BY records.change_seq LIMIT \(limit)
            """)
    }

    public func latestChanges(sourceID: String, limit: Int) async throws -> ChangePage {
        try await changePage(sourceID: sourceID, """
            \(raw: SyncRows.recordColumns)
            WHERE records.source_seq = (SELECT seq FROM sources WHERE id = \(sourceID))
            ORDER BY records.change_seq DESC LIMIT \(limit)
            """)
    }

    /// The feed's head and floor, and the records `query` reads as changes.
    private func changePage(sourceID: String, _ query: StoreSQL) async throws -> ChangePage {
        let rows = try await driver.read([
            "SELECT head, floor FROM record_feeds WHERE source_seq = (SELECT seq FROM sources WHERE id = \(sourceID))",
            query,
        ])
        let changes = try rows[1].map { row in
            let record = try RowCoding.record(row)
            let op: ChangeOp = record.deletedAt != nil ? .deleted : record.createdAt == record.updatedAt ? .created : .updated
            return RecordChange(op: op, record: record, change: Int64(try row.int("change_seq")))
        }
        let feed = rows.first(0)
        return ChangePage(changes: changes, head: Int64(try feed?.int("head") ?? 0), floor: Int64(try feed?.int("floor") ?? 0))
    }

    public func recordErrors(syncID: String, limit: Int, after: Int64?) async throws -> [(id: Int64, error: RecordError)] {
        let rows = try await driver.read([
            "SELECT * FROM record_errors WHERE sync_id = \(syncID) AND id > \(after ?? 0) ORDER BY id LIMIT \(limit)",
        ])
        return try rows[0].map { try RowCoding.recordError($0) }
    }
}

extension DatabaseStore: ClusterRegistry {
    /// A node (re)starting claims: it registers as not draining.
    public func registerNode(_ node: NodeInfo) async throws {
        _ = try await driver.execute("""
            INSERT INTO nodes (id, role, workers, started_at, heartbeat_at, draining)
            VALUES (\(node.id), \(node.role), \(node.workers), \(node.startedAt.timeIntervalSince1970), \(node.heartbeatAt.timeIntervalSince1970), \(false))
            ON CONFLICT (id) DO UPDATE SET role = excluded.role, workers = excluded.workers, started_at = excluded.started_at,
                heartbeat_at = excluded.heartbeat_at, draining = excluded.draining
            """)
    }

    public func heartbeatNode(_ node: NodeInfo, now: Date) async throws {
        _ = try await driver.execute("""
            INSERT INTO nodes (id, role, workers, started_at, heartbeat_at)
            VALUES (\(node.id), \(node.role), \(node.workers), \(node.startedAt.timeIntervalSince1970), \(now.timeIntervalSince1970))
            ON CONFLICT (id) DO UPDATE SET role = excluded.role, workers = excluded.workers, heartbeat_at = excluded.heartbeat_at
            """)
    }

    public func removeNode(id: String) async throws {
        _ = try await driver.execute("DELETE FROM nodes WHERE id = \(id)")
    }

    public func isDraining(nodeID: String) async throws -> Bool {
        try await driver.read(["SELECT draining FROM nodes WHERE id = \(nodeID)"]).first(0)?.bool("draining") ?? false
    }
}

extension DatabaseStore: ClusterControl {
    public func setDraining(nodeID: String, draining: Bool) async throws -> NodeInfo {
        let rows = try await driver.execute("UPDATE nodes SET draining = \(draining) WHERE id = \(nodeID) RETURNING *")
        guard let row = rows.first(0) else { throw SyncStoreError.notFound("node \(nodeID)") }
        return try RowCoding.node(row)
    }

    /// The queue, the nodes, and the sources that are failing or stale (``SourceHealth``
    /// in SQL: the latest finished sync failed; a scheduled source with no completed sync
    /// within twice its interval), at most 100 of each.
    public func healthSnapshot(now: Date) async throws -> HealthSnapshot {
        let t = now.timeIntervalSince1970
        let queued = SyncStatus.queued, running = SyncStatus.running
        let latestFinished = "(SELECT status FROM syncs WHERE source_id = s.id AND \(SchemaVocabulary.isTerminal) ORDER BY finished_at DESC LIMIT 1)"
        let rows = try await driver.read([
            """
            SELECT COUNT(*) FILTER (WHERE status = \(queued)) AS queued,
                   MIN(queued_at) FILTER (WHERE status = \(queued)) AS oldest,
                   COUNT(*) FILTER (WHERE status = \(running)) AS running,
                   COUNT(*) FILTER (WHERE status = \(running) AND lease_expires_at < \(t)) AS expired
            FROM syncs WHERE status \(in: [queued, running])
            """,
            "SELECT * FROM nodes ORDER BY id",
            """
            SELECT s.id, s.name FROM sources s WHERE \(raw: latestFinished) = \(SyncStatus.failed) ORDER BY s.name LIMIT 100
            """,
            """
            SELECT s.id, s.name FROM sources s
            WHERE s.schedule_every_seconds IS NOT NULL
              AND \(raw: latestFinished) \(in: [SyncStatus.completed, SyncStatus.cancelled])
              AND COALESCE((SELECT MAX(finished_at) FROM syncs WHERE source_id = s.id AND status = \(SyncStatus.completed)), 0)
                  < \(t) - \(SourceHealth.staleAfterIntervals) * s.schedule_every_seconds
            ORDER BY s.name LIMIT 100
            """,
        ])
        let queue = rows.first(0)
        return HealthSnapshot(
            queued: try queue?.int("queued") ?? 0, oldestQueuedAt: RowCoding.date(try queue?.optionalDouble("oldest")),
            running: try queue?.int("running") ?? 0, expiredLeases: try queue?.int("expired") ?? 0,
            nodes: try rows[1].map { try RowCoding.node($0) },
            failingSources: try rows[2].map { try RowCoding.sourceRef($0) },
            staleSources: try rows[3].map { try RowCoding.sourceRef($0) })
    }
}
