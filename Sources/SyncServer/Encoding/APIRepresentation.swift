import Foundation
import SyncCore
import SyncStore

/// How domain values look on the wire (API.md). Built as explicit JSON so that
/// absent values are `null`, never missing, and secrets never leave the server.
enum APIRepresentation {
    static func date(_ d: Date?) -> JSONValue { d.map { .string(Timestamp.format($0)) } ?? .null }
    static func int(_ i: Int) -> JSONValue { .number(Double(i)) }

    static func source(_ source: Source, summary: SourceSyncSummary, now: Date = Date()) -> JSONValue {
        .object([
            "id": .string(source.id),
            "name": .string(source.name),
            "kind": .string(source.kind),
            "config": .object(SecretRedaction.redact(source.config)),
            "schedule": source.schedule.map { .object(["every_seconds": .number($0.everySeconds)]) } ?? .null,
            "priority": int(source.priority),
            "retry": .object([
                "max_attempts": int(source.retry.maxAttempts),
                "initial_delay_seconds": .number(source.retry.initialDelaySeconds),
                "max_delay_seconds": .number(source.retry.maxDelaySeconds),
                "multiplier": .number(source.retry.multiplier),
            ]),
            "rate_limit": source.rateLimit.map {
                .object(["requests_per_second": .number($0.requestsPerSecond), "burst": int($0.burst)])
            } ?? .null,
            "min_trigger_interval_seconds": .number(source.minTriggerIntervalSeconds),
            "state": .object(source.state),
            "created_at": date(source.createdAt),
            "updated_at": date(source.updatedAt),
            "last_sync": summary.latest.map { sync in
                .object([
                    "id": .string(sync.id), "status": .string(sync.status.rawValue), "mode": .string(sync.mode.rawValue),
                    "queued_at": date(sync.queuedAt), "finished_at": date(sync.finishedAt),
                ])
            } ?? .null,
            "health": .string(summary.health(schedule: source.schedule, now: now).rawValue),
        ])
    }

    static func progress(_ p: SyncProgress) -> JSONValue {
        .object([
            "pages": int(p.pages), "records_read": int(p.recordsRead), "records_created": int(p.recordsCreated),
            "records_updated": int(p.recordsUpdated), "records_unchanged": int(p.recordsUnchanged),
            "records_deleted": int(p.recordsDeleted), "records_failed": int(p.recordsFailed),
            "bytes_read": int(p.bytesRead), "checkpoint_at": date(p.checkpointAt),
        ])
    }

    static func error(_ e: SyncError?) -> JSONValue {
        guard let e else { return .null }
        var o: JSONObject = ["code": .string(e.code.rawValue), "message": .string(e.message), "retryable": .bool(e.retryable)]
        if let status = e.httpStatus { o["http_status"] = int(status) }
        return .object(o)
    }

    static func sync(_ sync: Sync) -> JSONValue {
        .object([
            "id": .string(sync.id),
            "source_id": .string(sync.sourceID),
            "status": .string(sync.status.rawValue),
            "mode": .string(sync.mode.rawValue),
            "priority": int(sync.priority),
            "trigger": .string(sync.trigger.rawValue),
            "attempt": int(sync.attempt),
            "max_attempts": int(sync.maxAttempts),
            "queued_at": date(sync.queuedAt),
            "started_at": date(sync.startedAt),
            "finished_at": date(sync.finishedAt),
            "next_retry_at": date(sync.nextRetryAt),
            "heartbeat_at": date(sync.heartbeatAt),
            "cancel_requested": .bool(sync.cancelRequested),
            "node": sync.leaseOwner.map(JSONValue.string) ?? .null,
            "progress": progress(sync.progress),
            "result": sync.result.map { r in
                .object([
                    "records_read": int(r.recordsRead), "records_created": int(r.recordsCreated),
                    "records_updated": int(r.recordsUpdated), "records_unchanged": int(r.recordsUnchanged),
                    "records_deleted": int(r.recordsDeleted), "records_failed": int(r.recordsFailed),
                    "pages": int(r.pages), "bytes_read": int(r.bytesRead),
                    "duration_seconds": .number(r.durationSeconds), "records_per_second": .number(r.recordsPerSecond),
                ])
            } ?? .null,
            "error": error(sync.error),
            "attempts": .array(sync.attempts.map { a in
                .object([
                    "number": int(a.number), "started_at": date(a.startedAt), "finished_at": date(a.finishedAt),
                    "status": .string(a.status.rawValue), "error": error(a.error),
                    "node": a.node.map(JSONValue.string) ?? .null,
                ])
            }),
        ])
    }

    /// A record as JSON bytes: the stored bytes are spliced in as they came, never re-parsed.
    static func record(_ record: StoredRecord) -> [UInt8] {
        let meta: JSONValue = .object([
            "key": .string(record.key), "created_at": date(record.createdAt), "updated_at": date(record.updatedAt),
            "deleted_at": date(record.deletedAt), "sync_id": .string(record.syncID),
        ])
        let metaBytes = [UInt8]((try? APIJSON.encoder.encode(meta)) ?? Data("{}".utf8))
        return Array(#"{"data":"#.utf8) + record.data + [UInt8(ascii: ",")] + metaBytes.dropFirst()
    }

    static func page(_ items: [JSONValue], nextCursor: String?) -> JSONValue {
        .object(["items": .array(items), "next_cursor": nextCursor.map(JSONValue.string) ?? .null])
    }
}

/// Write-only secrets (API.md, "Secrets"): every value under `headers`, and every
/// key named like a token, password, secret or API key, at any depth.
enum SecretRedaction {
    static let mask = JSONValue.string("***")

    static func isSecretKey(_ key: String) -> Bool {
        let k = key.lowercased()
        return ["token", "password", "secret", "api_key", "apikey", "authorization"].contains { k.contains($0) }
    }

    static func redact(_ object: JSONObject, underHeaders: Bool = false) -> JSONObject {
        var out = JSONObject()
        for (key, value) in object {
            if underHeaders || isSecretKey(key) {
                if case .object(let inner) = value, !underHeaders {
                    out[key] = .object(redact(inner, underHeaders: true))
                } else {
                    out[key] = value.isNull ? .null : mask
                }
            } else if key == "headers", case .object(let inner) = value {
                out[key] = .object(redact(inner, underHeaders: true))
            } else if case .object(let inner) = value {
                out[key] = .object(redact(inner))
            } else {
                out[key] = value
            }
        }
        return out
    }

    /// RFC 7396 merge patch of `patch` onto `base`, where a secret given as `"***"`
    /// keeps the stored value (so a client can send back what it read).
    static func merge(_ base: JSONObject, patch: JSONObject, underHeaders: Bool = false) -> JSONObject {
        var out = base
        for (key, value) in patch {
            let secret = underHeaders || isSecretKey(key)
            switch value {
            case .null:
                out.removeValue(forKey: key)
            case .object(let inner):
                let old = base[key]?.objectValue ?? [:]
                out[key] = .object(merge(old, patch: inner, underHeaders: underHeaders || key == "headers" || secret))
            default:
                if secret && value == mask {
                    // keep the stored secret
                } else {
                    out[key] = value
                }
            }
        }
        return out
    }
}
