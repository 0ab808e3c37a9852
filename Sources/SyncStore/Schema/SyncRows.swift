import Foundation
import SyncCore

/// How a sync, its attempts and records are read, by the rules and the drivers alike: the
/// statements and the columns the mapping (``RowCoding``) reads.
enum SyncRows {
    /// A sync and its attempts: two statements, read with ``sync(_:at:)``.
    static func sync(id: String) -> [StoreSQL] {
        ["SELECT * FROM syncs WHERE id = \(id)", "SELECT * FROM sync_attempts WHERE sync_id = \(id) ORDER BY number"]
    }

    /// The sync read by ``sync(id:)`` starting at statement `index`.
    static func sync(_ rows: Rows, at index: Int) throws -> Sync? {
        guard let row = rows.first(index) else { return nil }
        return try RowCoding.sync(row, attempts: try rows[index + 1].map { try RowCoding.attempt($0) })
    }

    /// The sync of ``sync(id:)``, which the transaction has just written (so it exists).
    static func written(_ rows: Rows, id: String) throws -> Sync {
        guard let sync = try sync(rows, at: 0) else { throw SyncStoreError.notFound("sync \(id)") }
        return sync
    }

    /// The columns ``RowCoding/sync(_:attempts:)`` reads: what the SQLite outbox trigger
    /// copies into a delivery's snapshot (PostgreSQL's copies the whole row).
    static let syncSnapshotColumns = [
        "id", "source_id", "status", "mode", "priority", "trigger", "attempt", "max_attempts", "failed_attempts",
        "queued_at", "started_at", "finished_at", "next_retry_at", "heartbeat_at", "cancel_requested",
        "pages", "records_read", "records_created", "records_updated", "records_unchanged", "records_deleted",
        "records_failed", "bytes_read", "checkpoint_at", "error", "lease_owner", "lease_expires_at", "checkpoint", "run_seconds",
    ]

    static let recordColumns = "SELECT records.*, syncs.id AS sync_id FROM records LEFT JOIN syncs ON syncs.seq = records.sync_seq"
}
