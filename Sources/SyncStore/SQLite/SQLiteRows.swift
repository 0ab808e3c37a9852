import Foundation
import GRDB
import SyncCore

/// Mapping between SQLite rows and domain values.
enum SQLiteRows {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()
    static let decoder = JSONDecoder()

    static func json<T: Encodable>(_ value: T) -> String {
        // Encoding our own Codable value types cannot fail.
        String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
        guard let text else { return nil }
        return try? decoder.decode(T.self, from: Data(text.utf8))
    }

    static func date(_ value: Double?) -> Date? { value.map { Date(timeIntervalSince1970: $0) } }
    static func seconds(_ date: Date?) -> Double? { date?.timeIntervalSince1970 }

    static func source(_ row: Row) -> Source {
        Source(
            id: row["id"],
            name: row["name"],
            kind: row["kind"],
            config: decode(JSONObject.self, row["config"]) ?? [:],
            schedule: (row["schedule_every_seconds"] as Double?).map { Schedule(everySeconds: $0) },
            priority: row["priority"],
            retry: decode(RetryPolicy.self, row["retry"]) ?? .default,
            rateLimit: decode(RateLimit.self, row["rate_limit"]),
            minTriggerIntervalSeconds: row["min_trigger_interval_seconds"],
            state: decode(JSONObject.self, row["state"]) ?? [:],
            createdAt: Date(timeIntervalSince1970: row["created_at"]),
            updatedAt: Date(timeIntervalSince1970: row["updated_at"])
        )
    }

    static func sync(_ row: Row, attempts: [SyncAttempt]) -> Sync {
        var progress = SyncProgress()
        progress.pages = row["pages"]
        progress.recordsRead = row["records_read"]
        progress.recordsCreated = row["records_created"]
        progress.recordsUpdated = row["records_updated"]
        progress.recordsUnchanged = row["records_unchanged"]
        progress.recordsDeleted = row["records_deleted"]
        progress.recordsFailed = row["records_failed"]
        progress.bytesRead = row["bytes_read"]
        progress.checkpointAt = date(row["checkpoint_at"])
        return Sync(
            id: row["id"],
            sourceID: row["source_id"],
            status: SyncStatus(rawValue: row["status"]) ?? .failed,
            mode: SyncMode(rawValue: row["mode"]) ?? .full,
            priority: row["priority"],
            trigger: SyncTrigger(rawValue: row["trigger"]) ?? .api,
            attempt: row["attempt"],
            maxAttempts: row["max_attempts"],
            failedAttempts: row["failed_attempts"],
            queuedAt: Date(timeIntervalSince1970: row["queued_at"]),
            startedAt: date(row["started_at"]),
            finishedAt: date(row["finished_at"]),
            nextRetryAt: date(row["next_retry_at"]),
            heartbeatAt: date(row["heartbeat_at"]),
            cancelRequested: row["cancel_requested"],
            progress: progress,
            error: decode(SyncError.self, row["error"]),
            attempts: attempts,
            leaseOwner: row["lease_owner"],
            leaseExpiresAt: date(row["lease_expires_at"]),
            checkpoint: decode(JSONValue.self, row["checkpoint"]),
            runSeconds: row["run_seconds"]
        )
    }

    static func attempt(_ row: Row) -> SyncAttempt {
        SyncAttempt(
            number: row["number"],
            startedAt: Date(timeIntervalSince1970: row["started_at"]),
            finishedAt: date(row["finished_at"]),
            status: SyncStatus(rawValue: row["status"]) ?? .failed,
            error: decode(SyncError.self, row["error"]),
            node: row["node"]
        )
    }

    static func record(_ row: Row) -> StoredRecord {
        let data: Data = row["data"]
        return StoredRecord(
            key: row["key"],
            data: [UInt8](data),
            createdAt: Date(timeIntervalSince1970: row["created_at"]),
            updatedAt: Date(timeIntervalSince1970: row["updated_at"]),
            deletedAt: date(row["deleted_at"]),
            syncID: (row["sync_id"] as String?) ?? ""
        )
    }
}
