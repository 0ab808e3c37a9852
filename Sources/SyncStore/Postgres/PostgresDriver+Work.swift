import Foundation
import Logging
import PostgresNIO
import SyncCore

/// The workers' hot paths on PostgreSQL: one prepared statement each where the page allows
/// it (docs/benchmarks.md tells how each shape was measured), a short transaction otherwise.
extension PostgresDriver {
    func claimBatch(owner: String, leaseSeconds: Double, now: Date, limit: Int) async throws -> [ClaimedSync] {
        let logger = logger
        let t = now.timeIntervalSince1970
        // One prepared statement, one round trip for the whole batch (``PostgresStatements/Claim``).
        let statement = PostgresStatements.Claim(now: t, owner: owner, limit: max(1, limit), expiresAt: t + leaseSeconds)
        let rows = try await onConnection { connection in try await connection.rows(statement, logger: logger) }
        return try rows.map { row in
            // The claimed sync's earlier attempts are not loaded: the worker does not need them.
            let sync = try RowCoding.sync(row, attempts: [])
            let source = try RowCoding.source(PrefixedRow(base: row, prefix: "src_"))
            let lease = Lease(syncID: sync.id, owner: owner, token: try row.string("lease_token"), attempt: sync.attempt)
            return ClaimedSync(sync: sync, source: source, lease: lease)
        }
    }

    func commitPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress {
        if let progress = try await commitPageInOneStatement(page, lease: lease, now: now) { return progress }
        return try await commitPageInTransaction(page, lease: lease, now: now)
    }

    /// The common page (distinct keys, no record errors, no source state) in one statement,
    /// so one round trip and an implicit transaction. Every step hangs off the fence row, which
    /// also requires the page to follow the stored one: no row back means nothing was written,
    /// and the transactional path then tells a lost lease from a replayed page or a gap.
    func commitPageInOneStatement(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress? {
        guard Self.isSimple(page) else { return nil }
        let logger = logger
        let t = now.timeIntervalSince1970
        let columns = PostgresRecordWriter.columns(page.records)
        let statement = PostgresStatements.CommitPage(
            syncID: lease.syncID, token: lease.token, storedPages: page.pageNumber - 1, keys: columns.keys, data: columns.data,
            hashes: columns.hashes, now: t, recordErrors: page.recordErrors.count, bytesRead: page.bytesRead,
            checkpoint: page.checkpoint.map(RowCoding.json))
        let upserting = upsertingLeases
        let row = try await onConnection { connection -> PostgresRandomAccessRow? in
            // Keys new to the source (a first sync) are inserted without the conflict check;
            // the first key that exists sends this page, and the attempt's later ones, to the upsert.
            if !upserting.contains(lease.token) {
                do {
                    return try await connection.first(PostgresStatements.CommitNewPage(page: statement), logger: logger)
                } catch let error as PSQLError where Self.isUniqueViolation(error) {
                    upserting.insert(lease.token)
                }
            }
            return try await connection.first(statement, logger: logger)
        }
        return try row.map { try RowCoding.sync($0, attempts: []).progress }
    }

    /// Whether a page can go through the one-statement paths.
    static func isSimple(_ page: PageCommit) -> Bool {
        page.recordErrors.isEmpty && (page.sourceState?.isEmpty ?? true) && PostgresRecordWriter.distinctRounds(page.records).count <= 1
    }

    func completeWithFinalPage(_ page: PageCommit, lease: Lease, now: Date) async throws -> Sync {
        upsertingLeases.remove(lease.token)
        if Self.isSimple(page) {
            let logger = logger
            let t = now.timeIntervalSince1970
            let columns = PostgresRecordWriter.columns(page.records)
            let statement = PostgresStatements.CompleteWithPage(
                page: PostgresStatements.CommitPage(
                    syncID: lease.syncID, token: lease.token, storedPages: page.pageNumber - 1, keys: columns.keys,
                    data: columns.data, hashes: columns.hashes, now: t, recordErrors: page.recordErrors.count, bytesRead: page.bytesRead,
                    checkpoint: page.checkpoint.map(RowCoding.json)),
                attempt: lease.attempt, end: AttemptEnd(outcome: .completed, now: t))
            if let row = try await onConnection({ connection in try await connection.first(statement, logger: logger) }) {
                return try RowCoding.sync(row, attempts: [])
            }
        }
        // Not simple, or nothing written (lost lease, replayed page, gap): the two-step path says which.
        _ = try await commitPage(page, lease: lease, now: now)
        return try await finish(lease, outcome: .completed, now: now)
    }

    func commitPageInTransaction(_ page: PageCommit, lease: Lease, now: Date) async throws -> SyncProgress {
        let logger = logger
        let t = now.timeIntervalSince1970
        return try await inTransaction { connection in
            // Fence first, and hold the row: a rescuer cannot take the lease until this commits.
            guard let row = try await PostgresSharedStatement.rows(PageWrite.fence(lease), on: connection, logger: logger).first else {
                throw SyncStoreError.leaseLost
            }
            let fence = try PageWrite.Fence(row, pageNumber: page.pageNumber)
            switch fence.order {
            case .alreadyCommitted:
                guard let row = try await connection.one("SELECT * FROM syncs WHERE id = \(lease.syncID)", logger: logger) else {
                    throw SyncStoreError.leaseLost
                }
                return try RowCoding.sync(row, attempts: []).progress
            case .behind(let error):
                throw error
            case .next:
                break
            }
            let counts = try await PostgresRecordWriter.upsert(
                page.records, sourceSeq: fence.sourceSeq, syncSeq: fence.syncSeq, now: t, connection: connection, logger: logger)
            if fence.fullMode {
                try await PostgresRecordWriter.markSeen(
                    page.recordErrorKeys, sourceSeq: fence.sourceSeq, syncSeq: fence.syncSeq, connection: connection, logger: logger)
            }
            for error in page.recordErrors {
                _ = try await PostgresSharedStatement.rows(PageWrite.recordError(error, syncID: lease.syncID), on: connection, logger: logger)
            }
            if counts.changes > 0 {
                try await connection.run(
                    "SELECT pg_notify(\(PostgresStatements.channel), \(StoreEvent.recordsChanged(sourceID: fence.sourceID).payload))",
                    logger: logger)
            }
            if let state = page.sourceState, !state.isEmpty {
                try await connection.run(
                    "UPDATE sources SET state = (state::jsonb || \(RowCoding.json(state))::jsonb)::text WHERE id = \(fence.sourceID)",
                    logger: logger)
            }
            var binds = PostgresBindings(capacity: 10)
            binds.append(counts.created)
            binds.append(counts.updated)
            binds.append(counts.unchanged)
            binds.append(page.recordErrors.count)
            binds.append(page.bytesRead)
            binds.append(page.checkpoint.map(RowCoding.json))
            binds.append(t)
            binds.append(lease.syncID)
            binds.append(counts.range?.from)
            binds.append(counts.range?.to)
            let progress = PageProgress.syncColumns(
                created: "$1::int8", updated: "$2::int8", unchanged: "$3::int8", recordErrors: "$4::int8", bytesRead: "$5::int8",
                checkpoint: "$6::text", now: "$7::float8")
            let changes = SyncChangesSchema.syncColumns(from: "$9::int8", to: "$10::int8")
            guard let row = try await connection.one(
                PostgresQuery(unsafeSQL: "UPDATE syncs SET \(progress), \(changes) WHERE id = $8::text RETURNING *", binds: binds), logger: logger
            ) else { throw SyncStoreError.leaseLost }
            return try RowCoding.sync(row, attempts: []).progress
        }
    }

    func finish(_ lease: Lease, outcome: AttemptOutcome, now: Date) async throws -> Sync {
        upsertingLeases.remove(lease.token)
        let logger = logger
        let t = now.timeIntervalSince1970
        let statement = PostgresStatements.Finish(
            syncID: lease.syncID, token: lease.token, now: t, attempt: lease.attempt, end: AttemptEnd(outcome: outcome, now: t))
        return try await onConnection { connection in
            guard let row = try await connection.first(statement, logger: logger) else { throw SyncStoreError.leaseLost }
            // The attempt closed above is not visible to this statement's snapshot: read the log after it.
            let attempts = try await connection.all(
                "SELECT * FROM sync_attempts WHERE sync_id = \(lease.syncID) ORDER BY number", logger: logger
            ).map { try RowCoding.attempt($0) }
            return try RowCoding.sync(row, attempts: attempts)
        }
    }
}
