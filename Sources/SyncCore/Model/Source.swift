import Foundation

/// One upstream to sync from: its kind, its kind-specific config, and the
/// policies (schedule, priority, retry, rate limit) that govern its syncs.
public struct Source: Sendable, Equatable {
    public var id: String
    public var name: String
    public var kind: String
    public var config: JSONObject
    public var schedule: Schedule?
    public var priority: Int
    public var retry: RetryPolicy
    public var rateLimit: RateLimit?
    public var minTriggerIntervalSeconds: Double
    /// What the source remembers between syncs (e.g. `{"cursor": "…"}` for incremental syncs).
    public var state: JSONObject
    public var createdAt: Date
    public var updatedAt: Date
    /// A paused source is neither scheduled nor claimed: its queued sync waits, a running one
    /// finishes (docs/queue.md). Changed only by pause and resume.
    public var paused: Bool
    /// Where to POST the source's sync events (docs/webhooks.md); secrets are write-only.
    public var notify: [WebhookTarget]
    /// At most `limit` syncs of the sources sharing `key` run at once, cluster-wide (docs/queue.md).
    public var concurrency: ConcurrencyLimit?
    /// A cron schedule (instead of `schedule`'s `every_seconds`; docs/queue.md).
    public var cron: CronSchedule?
    /// The cron schedule's next slot, kept by the schedulers (read-only).
    public var nextSlotAt: Date?
    /// Slots skipped because the source's previous sync was still active (read-only).
    public var skippedSlots: Int
    /// The id of the credential its requests carry (docs/credentials.md).
    public var credential: String?

    public init(
        id: String, name: String, kind: String, config: JSONObject, schedule: Schedule? = nil,
        priority: Int = 0, retry: RetryPolicy = .default, rateLimit: RateLimit? = nil,
        minTriggerIntervalSeconds: Double = 0, state: JSONObject = [:], createdAt: Date, updatedAt: Date, paused: Bool = false,
        notify: [WebhookTarget] = [], concurrency: ConcurrencyLimit? = nil, cron: CronSchedule? = nil,
        nextSlotAt: Date? = nil, skippedSlots: Int = 0, credential: String? = nil
    ) {
        self.credential = credential
        self.cron = cron
        self.nextSlotAt = nextSlotAt
        self.skippedSlots = skippedSlots
        self.concurrency = concurrency
        self.paused = paused
        self.notify = notify
        self.id = id
        self.name = name
        self.kind = kind
        self.config = config
        self.schedule = schedule
        self.priority = priority
        self.retry = retry
        self.rateLimit = rateLimit
        self.minTriggerIntervalSeconds = minTriggerIntervalSeconds
        self.state = state
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The name of the request budget the source's upstream requests draw on, and that an
    /// upstream's `Retry-After` closes (docs/queue.md): its rate limit's key, else its own.
    public var rateKey: String { rateLimit?.key.map { "key:" + $0 } ?? "source:" + id }

    /// Whether the source's config says it supports incremental syncs.
    public var supportsIncremental: Bool { config["incremental"]?.objectValue != nil }

    /// The mode a sync runs in when the trigger does not name one (docs/api.md).
    public var defaultMode: SyncMode { supportsIncremental ? .incremental : .full }
}

/// When a source syncs on its own.
public struct Schedule: Sendable, Codable, Equatable {
    public var everySeconds: Double
    public init(everySeconds: Double) { self.everySeconds = everySeconds }
    public enum CodingKeys: String, CodingKey, CaseIterable { case everySeconds = "every_seconds" }
}

/// One webhook of a source: the events it wants (`completed`, `failed`, `cancelled`,
/// `retrying`) POSTed to `url`, signed with `secret` when it has one.
/// What a webhook can be told about: a sync reaching a status (`completed`, …), or the
/// records a sync changed once it ended (`records.changed`, opt-in; docs/webhooks.md).
public enum WebhookEvent: String, Sendable, Codable, CaseIterable {
    case completed, failed, cancelled, retrying
    case recordsChanged = "records.changed"

    /// The status this event is sent for; `nil` for `records.changed`.
    public var status: SyncStatus? { SyncStatus(rawValue: rawValue) }
}

public struct WebhookTarget: Sendable, Codable, Equatable {
    public var url: String
    public var events: [WebhookEvent]
    public var secret: String?
    public init(url: String, events: [WebhookEvent] = WebhookTarget.events, secret: String? = nil) {
        self.url = url
        self.events = events
        self.secret = secret
    }
    /// The events a webhook gets when it names none: every status event, in this order.
    public static let events: [WebhookEvent] = [.completed, .failed, .cancelled, .retrying]
    /// The statuses a webhook can be told about.
    public static let statuses: [SyncStatus] = events.compactMap(\.status)
    public enum CodingKeys: String, CodingKey, CaseIterable { case url, events, secret }

    /// Who receives it: the URL's origin (`scheme://host:port`, lowercase, the port spelled
    /// out), so URLs that differ only in their path or query are one receiver. Deliveries
    /// share their slots per receiver (docs/webhooks.md).
    public var receiver: String { Self.receiver(of: url) }
}

/// A cron schedule: `expression` in `timezone`, each slot's sync queued up to `jitterSeconds`
/// late (spread at random), and after downtime `missed` says whether one catch-up sync runs.
public struct CronSchedule: Sendable, Codable, Equatable {
    public enum Missed: String, Sendable, Codable, CaseIterable { case skip, one }
    public var expression: String
    public var timezone: String
    public var jitterSeconds: Double
    public var missed: Missed
    public init(expression: String, timezone: String = "UTC", jitterSeconds: Double = 0, missed: Missed = .one) {
        self.expression = expression
        self.timezone = timezone
        self.jitterSeconds = jitterSeconds
        self.missed = missed
    }
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case expression = "cron", timezone, jitterSeconds = "jitter_seconds", missed
    }
    /// The parsed expression and zone (both checked when the source was written).
    public var parsed: (CronExpression, TimeZone)? {
        guard let e = try? CronExpression(expression), let z = TimeZone(identifier: timezone) else { return nil }
        return (e, z)
    }
}

/// A concurrency key: the sources naming one `key` run at most `limit` syncs at once.
public struct ConcurrencyLimit: Sendable, Codable, Equatable {
    public var key: String
    public var limit: Int
    public init(key: String, limit: Int) {
        self.key = key
        self.limit = limit
    }
    public enum CodingKeys: String, CodingKey, CaseIterable { case key, limit }
}


/// A source's name rule: 1–100 characters of `[A-Za-z0-9._-]`.
public enum SourceName {
    /// 1–100 characters of `A-Z a-z 0-9 . _ -`, and not shaped like an id (`src_` and 26
    /// characters): paths accept a name or an id, so a name must never read as another's id.
    public static func isValid(_ name: String) -> Bool {
        guard (1...100).contains(name.utf8.count), !Identifier.looksLikeID(name) else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
        }
    }
}
