import Foundation
import SyncCore
import SyncStore

/// How domain values look on the wire (docs/api.md). Built as explicit JSON so that
/// absent values are `null`, never missing, and secrets never leave the server. The value
/// types SyncCore also stores as JSON (retry, rate limit, schedule, progress, result,
/// error) are written with their `CodingKeys`: one spelling of each name, on the wire and
/// in the database.
enum APIRepresentation {
    static func date(_ d: Date?) -> JSONValue { d.map { .string(Timestamp.format($0)) } ?? .null }
    static func int(_ i: Int) -> JSONValue { .number(Double(i)) }

    static func source(_ source: Source, summary: SourceSyncSummary, now: Date = Date()) -> JSONValue {
        .object([
            "id": .string(source.id),
            "name": .string(source.name),
            "kind": .string(source.kind),
            "config": .object(SecretRedaction.redact(source.config)),
            "schedule": source.cron.map { cron in
                .fields([CronSchedule.CodingKeys.expression: .string(cron.expression), .timezone: .string(cron.timezone),
                         .jitterSeconds: .number(cron.jitterSeconds), .missed: .string(cron.missed.rawValue)])
            } ?? source.schedule.map { .fields([Schedule.CodingKeys.everySeconds: .number($0.everySeconds)]) } ?? .null,
            "next_run_at": date(source.cron != nil ? source.nextSlotAt : source.schedule.map { every in
                (summary.latest?.queuedAt).map { max(now, $0.addingTimeInterval(every.everySeconds)) } ?? now
            }),
            "skipped_slots": int(source.skippedSlots),
            "priority": int(source.priority),
            "paused": .bool(source.paused),
            "retry": .fields([
                RetryPolicy.CodingKeys.maxAttempts: int(source.retry.maxAttempts),
                .initialDelaySeconds: .number(source.retry.initialDelaySeconds),
                .maxDelaySeconds: .number(source.retry.maxDelaySeconds),
                .multiplier: .number(source.retry.multiplier),
            ]),
            "rate_limit": source.rateLimit.map {
                .fields([RateLimit.CodingKeys.requestsPerSecond: .number($0.requestsPerSecond), .burst: int($0.burst),
                         .key: $0.key.map(JSONValue.string) ?? .null])
            } ?? .null,
            "min_trigger_interval_seconds": .number(source.minTriggerIntervalSeconds),
            "notify": .array(source.notify.map(webhook)),
            "credential": source.credential.map(JSONValue.string) ?? .null,
            "concurrency": source.concurrency.map {
                .fields([ConcurrencyLimit.CodingKeys.key: .string($0.key), .limit: int($0.limit)])
            } ?? .null,
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
            "rate_limited_until": date(summary.rateLimitedUntil),
        ])
    }

    /// A webhook as shown: its secret write-only (`"***"` when it has one), and the URL's
    /// credentials masked like any URL in a config.
    static func reset(_ reset: SourceReset) -> JSONValue {
        .object([
            "id": .string(reset.id),
            "source_id": .string(reset.sourceID),
            "at": date(reset.at),
            "state": .bool(reset.state),
            "records": .bool(reset.records),
            "state_before": .object(SecretRedaction.redact(reset.stateBefore)),
            "records_deleted": int(reset.recordsDeleted),
            "trigger": .string(reset.trigger.rawValue),
        ])
    }

    static func webhook(_ target: WebhookTarget) -> JSONValue {
        .fields([
            WebhookTarget.CodingKeys.url: .string(SecretRedaction.redactURL(target.url)),
            .events: .array(target.events.map { .string($0.rawValue) }),
            .secret: target.secret == nil ? .null : SecretRedaction.mask,
        ])
    }

    /// One delivery of a sync's webhook (`GET /v1/syncs/{id}/deliveries`); never its secret or body.
    static func delivery(_ d: WebhookDelivery) -> JSONValue {
        .object([
            "id": .string(d.id), "sync_id": .string(d.syncID), "source_id": .string(d.sourceID), "event": .string(d.event),
            "url": .string(SecretRedaction.redactURL(d.url)), "status": .string(d.status.rawValue), "attempts": int(d.tries),
            "created_at": date(d.createdAt), "last_attempt_at": date(d.lastAttemptAt), "next_attempt_at": date(d.nextAttemptAt),
            "response_status": d.responseStatus.map(int) ?? .null, "last_error": d.lastError.map(JSONValue.string) ?? .null,
            "delivered_at": date(d.deliveredAt),
        ])
    }

    /// A node of the cluster: `status` is `stale` when its heartbeat is older than three intervals.
    static func node(_ node: NodeInfo, now: Date) -> JSONValue {
        .object([
            "id": .string(node.id), "role": .string(node.role), "workers": int(node.workers),
            "started_at": date(node.startedAt), "heartbeat_at": date(node.heartbeatAt), "draining": .bool(node.draining),
            "status": .string(now.timeIntervalSince(node.heartbeatAt) > NodeInfo.staleAfterSeconds ? "stale" : "ok"),
        ])
    }

    static func progress(_ p: SyncProgress) -> JSONValue {
        .fields([
            SyncProgress.CodingKeys.pages: int(p.pages), .recordsRead: int(p.recordsRead), .recordsCreated: int(p.recordsCreated),
            .recordsUpdated: int(p.recordsUpdated), .recordsUnchanged: int(p.recordsUnchanged),
            .recordsDeleted: int(p.recordsDeleted), .recordsFailed: int(p.recordsFailed),
            .bytesRead: int(p.bytesRead), .checkpointAt: date(p.checkpointAt),
        ])
    }

    /// The stretch of the source's change feed a sync's writes took, as feed cursors
    /// (`GET /v1/sources/{id}/changes?after=<from_cursor>&until=<to_cursor>`); `null` while it
    /// changed no record.
    static func changes(_ sync: Sync) -> JSONValue {
        guard let range = sync.changes else { return .null }
        return .object([
            "from_cursor": .string(ChangeCursor.encode(sourceID: sync.sourceID, change: range.from)),
            "to_cursor": .string(ChangeCursor.encode(sourceID: sync.sourceID, change: range.to)),
        ])
    }

    static func error(_ e: SyncError?) -> JSONValue {
        guard let e else { return .null }
        typealias Key = SyncError.CodingKeys
        var o: JSONObject = [
            // Redacted again when shown: a message stored by an older version may quote a secret.
            Key.code.stringValue: .string(e.code.rawValue), Key.message.stringValue: .string(SecretRedaction.redactText(e.message)),
            Key.retryable.stringValue: .bool(e.retryable),
        ]
        if let status = e.httpStatus { o[Key.httpStatus.stringValue] = int(status) }
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
            "changes": changes(sync),
            "result": sync.result.map { r in
                .fields([
                    SyncResult.CodingKeys.recordsRead: int(r.recordsRead), .recordsCreated: int(r.recordsCreated),
                    .recordsUpdated: int(r.recordsUpdated), .recordsUnchanged: int(r.recordsUnchanged),
                    .recordsDeleted: int(r.recordsDeleted), .recordsFailed: int(r.recordsFailed),
                    .pages: int(r.pages), .bytesRead: int(r.bytesRead),
                    .durationSeconds: .number(r.durationSeconds), .recordsPerSecond: .number(r.recordsPerSecond),
                ])
            } ?? .null,
            "error": error(sync.error),
            "attempts": .array(sync.attempts.map { a in
                .fields([
                    SyncAttempt.CodingKeys.number: int(a.number), .startedAt: date(a.startedAt), .finishedAt: date(a.finishedAt),
                    .status: .string(a.status.rawValue), .error: error(a.error),
                    .node: a.node.map(JSONValue.string) ?? .null,
                ])
            }),
        ])
    }

    /// A record as JSON bytes: the stored bytes are spliced in as they came, never re-parsed.
    static func record(_ record: StoredRecord) -> [UInt8] {
        var out: [UInt8] = []
        Self.record(record, into: &out)
        return out
    }

    /// Appends a record's JSON: `data` first (the stored bytes), then the other keys sorted.
    static func record(_ record: StoredRecord, into out: inout [UInt8]) {
        out.reserve(more: record.data.count + 160)
        out.append(contentsOf: #"{"data":"#.utf8)
        out.append(contentsOf: record.data)
        out.append(contentsOf: #","created_at":"#.utf8)
        JSONWriter.write(date(record.createdAt), into: &out)
        out.append(contentsOf: #","deleted_at":"#.utf8)
        JSONWriter.write(date(record.deletedAt), into: &out)
        out.append(contentsOf: #","key":"#.utf8)
        JSONWriter.writeString(record.key, into: &out)
        out.append(contentsOf: #","sync_id":"#.utf8)
        if let syncID = record.syncID { JSONWriter.writeString(syncID, into: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","updated_at":"#.utf8)
        JSONWriter.write(date(record.updatedAt), into: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func page(_ items: [JSONValue], nextCursor: String?) -> JSONValue {
        .object(["items": .array(items), "next_cursor": nextCursor.map(JSONValue.string) ?? .null])
    }
}


extension JSONValue {
    /// An object keyed by a type's `CodingKeys` (the one spelling of its field names).
    static func fields<Key: CodingKey>(_ pairs: KeyValuePairs<Key, JSONValue>) -> JSONValue {
        var object = JSONObject(minimumCapacity: pairs.count)
        for (key, value) in pairs { object[key.stringValue] = value }
        return .object(object)
    }
}

extension APIRepresentation {
    /// `GET /v1/stats` (docs/api.md, "Statistics").
    static func statistics(_ stats: SyncStatistics, window: String, now: Date) -> JSONValue {
        func number(_ value: Int) -> JSONValue { .number(Double(value)) }
        func rounded(_ value: Double?, _ places: Double = 1000) -> JSONValue {
            value.map { .number(($0 * places).rounded() / places) } ?? .null
        }
        let counts = JSONObject(uniqueKeysWithValues: SyncStatus.allCases.map { ($0.rawValue, number(stats.counts[$0] ?? 0)) })
        let r = stats.records
        return .object([
            "window": .string(window),
            "syncs": .object(counts),
            "success_rate": rounded(stats.successRate, 10_000),
            "duration_seconds": .object(["p50": rounded(stats.duration?.p50), "p95": rounded(stats.duration?.p95), "max": rounded(stats.duration?.max)]),
            "records": .object(["read": number(r.read), "created": number(r.created), "updated": number(r.updated),
                                "unchanged": number(r.unchanged), "deleted": number(r.deleted), "failed": number(r.failed)]),
            "records_per_second": .object(["p50": rounded(stats.recordsPerSecond?.p50, 10), "p95": rounded(stats.recordsPerSecond?.p95, 10),
                                           "max": rounded(stats.recordsPerSecond?.max, 10)]),
            "queue": .object(["depth": number(stats.queueDepth),
                              "oldest_queued_seconds": rounded(stats.oldestQueuedAt.map { max(0, now.timeIntervalSince($0)) }, 10)]),
            "by_source": .array(stats.bySource.map { s in
                .object(["source_id": .string(s.source.id), "name": .string(s.source.name), "completed": number(s.completed),
                         "failed": number(s.failed), "cancelled": number(s.cancelled), "last_success_at": date(s.lastSuccessAt)])
            }),
        ])
    }
}

extension Array where Element == UInt8 {
    /// Room for `more` bytes, growing geometrically: `reserveCapacity(count + n)` on every
    /// append allocates exactly that and copies the whole buffer each time (a page of 1,000
    /// items spent a quarter of its time in that copying).
    mutating func reserve(more: Int) {
        let needed = count + more
        if capacity < needed { reserveCapacity(Swift.max(needed, capacity * 2)) }
    }
}
