import Foundation
import SyncCore
import Synchronization

/// Mapping between rows and domain values, and the JSON text of stored documents.
enum RowCoding {
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

    /// A stored JSON document; `nil` for `NULL`. A document that does not decode (a damaged
    /// row, a hand edit) throws, naming the column: it never reads as nothing.
    static func decode<T: Decodable>(_ type: T.Type, _ text: String?, column: String) throws -> T? {
        guard let text else { return nil }
        do {
            return try decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw WrongType(column: column, expected: "a valid JSON document of its kind")
        }
    }

    /// Stored documents decoded once: a source's config, retry policy, rate limit and state
    /// are read on every request about it but change rarely, and decoding them was a
    /// visible share of a read (docs/benchmarks.md). Keyed by the stored text itself, so a
    /// changed document is simply another key; the cache forgets everything when full.
    static func decodeCached<T: Decodable & Sendable>(_ type: T.Type, _ row: some StoreRow, _ column: String) throws -> T? {
        guard let text = try row.optionalString(column) else { return nil }
        let key = DecodedKey(type: ObjectIdentifier(T.self), text: text)
        if let hit = decoded.withLock({ $0[key] }) as? T { return hit }
        guard let value = try decode(T.self, text, column: column) else { return nil }
        decoded.withLock { cache in
            if cache.count >= 4096 { cache.removeAll(keepingCapacity: true) }
            cache[key] = value
        }
        return value
    }

    private struct DecodedKey: Hashable, Sendable {
        let type: ObjectIdentifier
        let text: String
    }
    private static let decoded = Mutex<[DecodedKey: any Sendable]>([:])

    /// A source's webhooks as stored: `NULL` when it has none (the outbox trigger skips it).
    /// Each target carries its ``WebhookTarget/receiver`` too, which the outbox trigger copies
    /// into each delivery (reading a target ignores it: it follows from the URL).
    static func notify(_ targets: [WebhookTarget]) -> String? {
        targets.isEmpty ? nil : json(targets.map { StoredWebhookTarget(url: $0.url, events: $0.events, secret: $0.secret, receiver: $0.receiver) })
    }

    private struct StoredWebhookTarget: Encodable {
        var url: String
        var events: [WebhookEvent]
        var secret: String?
        var receiver: String
    }

    /// A stored time; one written by an older version out of range (`Infinity`, year 33715) reads clamped.
    static func date(_ value: Double?) -> Date? { value.map { Timestamp.clamped(Date(timeIntervalSince1970: $0)) } }

    static func reset(_ row: some StoreRow) throws -> SourceReset {
        SourceReset(id: try row.string("id"), sourceID: try row.string("source_id"),
                    at: date(try row.double("at")) ?? Date(timeIntervalSince1970: 0),
                    state: try row.bool("state"), records: try row.bool("records"),
                    stateBefore: try decode(JSONObject.self, try row.string("state_before"), column: "state_before") ?? [:],
                    recordsDeleted: try row.int("records_deleted"),
                    trigger: SyncTrigger(rawValue: try row.string("trigger")) ?? .api)
    }

    static func source(_ row: some StoreRow) throws -> Source {
        Source(
            id: try row.string("id"),
            name: try row.string("name"),
            kind: try row.string("kind"),
            config: try decodeCached(JSONObject.self, row, "config") ?? [:],
            schedule: try row.optionalDouble("schedule_every_seconds").map { Schedule(everySeconds: $0) },
            priority: try row.int("priority"),
            retry: try decodeCached(RetryPolicy.self, row, "retry") ?? .default,
            rateLimit: try decodeCached(RateLimit.self, row, "rate_limit"),
            minTriggerIntervalSeconds: try row.double("min_trigger_interval_seconds"),
            state: try decodeCached(JSONObject.self, row, "state") ?? [:],
            createdAt: Date(timeIntervalSince1970: try row.double("created_at")),
            updatedAt: Date(timeIntervalSince1970: try row.double("updated_at")),
            paused: try row.bool("paused"),
            notify: try decodeCached([WebhookTarget].self, row, "notify") ?? [],
            concurrency: try decodeCached(ConcurrencyLimit.self, row, "concurrency"),
            cron: try decodeCached(CronSchedule.self, row, "schedule_cron"),
            nextSlotAt: date(try row.optionalDouble("next_slot_at")),
            skippedSlots: try row.int("skipped_slots"),
            credential: try row.optionalString("credential_id")
        )
    }

    /// A row of ``SyncStatements/sourceViews(_:now:)``.
    static func sourceView(_ row: some StoreRow) throws -> SourceView {
        SourceView(source: try source(row), summary: try summary(row))
    }

    static func summary(_ row: some StoreRow) throws -> SourceSyncSummary {
        SourceSyncSummary(latest: try brief(row, "l"), latestFinished: try brief(row, "f"),
                          lastCompletedAt: date(try row.optionalDouble("last_completed_at")),
                          rateLimitedUntil: date(try row.optionalDouble("rate_limited_until")),
                          credentialNeedsReauth: try row.optionalString("credential_status") == CredentialStatus.needsReauth.rawValue)
    }

    /// The sync of a summary whose columns start with `prefix_`, if the join found one.
    private static func brief(_ row: some StoreRow, _ prefix: String) throws -> SourceSyncSummary.SyncBrief? {
        guard let id = try row.optionalString("\(prefix)_id") else { return nil }
        return SourceSyncSummary.SyncBrief(
            id: id,
            status: SyncStatus(rawValue: try row.string("\(prefix)_status")) ?? .failed,
            mode: SyncMode(rawValue: try row.string("\(prefix)_mode")) ?? .full,
            queuedAt: Date(timeIntervalSince1970: try row.double("\(prefix)_queued_at")),
            startedAt: date(try row.optionalDouble("\(prefix)_started_at")),
            finishedAt: date(try row.optionalDouble("\(prefix)_finished_at")),
            recordsRead: try row.int("\(prefix)_records_read"))
    }

    static func sync(_ row: some StoreRow, attempts: [SyncAttempt]) throws -> Sync {
        var progress = SyncProgress()
        progress.pages = try row.int("pages")
        progress.recordsRead = try row.int("records_read")
        progress.recordsCreated = try row.int("records_created")
        progress.recordsUpdated = try row.int("records_updated")
        progress.recordsUnchanged = try row.int("records_unchanged")
        progress.recordsDeleted = try row.int("records_deleted")
        progress.recordsFailed = try row.int("records_failed")
        progress.bytesRead = try row.int("bytes_read")
        progress.checkpointAt = date(try row.optionalDouble("checkpoint_at"))
        return Sync(
            id: try row.string("id"),
            sourceID: try row.string("source_id"),
            status: SyncStatus(rawValue: try row.string("status")) ?? .failed,
            mode: SyncMode(rawValue: try row.string("mode")) ?? .full,
            priority: try row.int("priority"),
            trigger: SyncTrigger(rawValue: try row.string("trigger")) ?? .api,
            attempt: try row.int("attempt"),
            maxAttempts: try row.int("max_attempts"),
            failedAttempts: try row.int("failed_attempts"),
            queuedAt: Date(timeIntervalSince1970: try row.double("queued_at")),
            startedAt: date(try row.optionalDouble("started_at")),
            finishedAt: date(try row.optionalDouble("finished_at")),
            nextRetryAt: date(try row.optionalDouble("next_retry_at")),
            heartbeatAt: date(try row.optionalDouble("heartbeat_at")),
            cancelRequested: try row.bool("cancel_requested"),
            progress: progress,
            error: try decode(SyncError.self, try row.optionalString("error"), column: "error"),
            attempts: attempts,
            leaseOwner: try row.optionalString("lease_owner"),
            leaseExpiresAt: date(try row.optionalDouble("lease_expires_at")),
            checkpoint: try decode(JSONValue.self, try row.optionalString("checkpoint"), column: "checkpoint"),
            runSeconds: try row.double("run_seconds"),
            changes: try syncChanges(row)
        )
    }

    /// A sync's stretch of the feed (migration 11); a snapshot written before it has none.
    static func syncChanges(_ row: some StoreRow) throws -> SyncChanges? {
        guard row.has("change_to"), let to = try row.optionalInt("change_to") else { return nil }
        return SyncChanges(from: Int64(try row.optionalInt("change_from") ?? 0), to: Int64(to))
    }

    static func attempt(_ row: some StoreRow) throws -> SyncAttempt {
        SyncAttempt(
            number: try row.int("number"),
            startedAt: Date(timeIntervalSince1970: try row.double("started_at")),
            finishedAt: date(try row.optionalDouble("finished_at")),
            status: SyncStatus(rawValue: try row.string("status")) ?? .failed,
            error: try decode(SyncError.self, try row.optionalString("error"), column: "error"),
            node: try row.optionalString("node")
        )
    }

    static func record(_ row: some StoreRow) throws -> StoredRecord {
        StoredRecord(
            key: try row.string("key"),
            data: try row.bytes("data"),
            createdAt: Date(timeIntervalSince1970: try row.double("created_at")),
            updatedAt: Date(timeIntervalSince1970: try row.double("updated_at")),
            deletedAt: date(try row.optionalDouble("deleted_at")),
            syncID: try row.optionalString("sync_id")
        )
    }

    static func recordError(_ row: some StoreRow) throws -> (id: Int64, error: RecordError) {
        (id: Int64(try row.int("id")),
         error: RecordError(page: try row.int("page"), recordKey: try row.optionalString("record_key"), message: try row.string("message")))
    }

    static func node(_ row: some StoreRow) throws -> NodeInfo {
        NodeInfo(
            id: try row.string("id"), role: try row.string("role"), workers: try row.int("workers"),
            startedAt: Date(timeIntervalSince1970: try row.double("started_at")),
            heartbeatAt: Date(timeIntervalSince1970: try row.double("heartbeat_at")), draining: try row.bool("draining"))
    }

    static func sourceRef(_ row: some StoreRow) throws -> SourceRef {
        SourceRef(id: try row.string("id"), name: try row.string("name"))
    }
}
