import Foundation
import SyncConnectors
import SyncCore

/// Reads and validates a source definition from a request body (create or patch),
/// collecting every problem with its field path instead of stopping at the first.
struct SourceInput {
    static let fields: Set<String> = [
        "name", "kind", "config", "schedule", "priority", "retry", "rate_limit", "min_trigger_interval_seconds", "notify", "concurrency",
        "credential",
    ]

    /// A new source from a `POST /v1/sources` body.
    static func create(_ body: JSONObject, kinds: SourceKindRegistry, now: Date) throws(Problem) -> Source {
        var source = Source(id: Identifier.make("src", now: now), name: "", kind: "", config: [:], createdAt: now, updatedAt: now)
        var errors: [FieldError] = []
        if body["name"] == nil { errors.append(FieldError("name", "is required")) }
        if body["kind"] == nil { errors.append(FieldError("kind", "is required")) }
        if body["config"] == nil { errors.append(FieldError("config", "is required")) }
        apply(body, to: &source, kinds: kinds, errors: &errors)
        // The mask is what a URL is shown with, never what one is.
        errors += WebhookInput.maskedURLs(source.notify, "holds \"***\", the mask of a secret; send the full URL")
        errors += maskedSecrets(source.config)
        guard errors.isEmpty else { throw Problem.validation(errors) }
        source.nextSlotAt = firstSlot(source.cron, now: now)
        return source
    }

    /// A cron schedule's first slot after `now` (what the source shows as `next_run_at`).
    static func firstSlot(_ cron: CronSchedule?, now: Date) -> Date? {
        guard let (expression, zone) = cron?.parsed else { return nil }
        return expression.next(after: now, in: zone)
    }

    /// `existing` with a `PATCH` body applied (config as an RFC 7396 merge patch; secrets kept unless replaced).
    static func patch(_ existing: Source, with body: JSONObject, kinds: SourceKindRegistry, now: Date) throws(Problem) -> Source {
        var source = existing
        var body = body
        if let patch = body["config"]?.objectValue {
            body["config"] = .object(SecretRedaction.merge(existing.config, patch: patch))
        }
        var errors: [FieldError] = []
        apply(body, to: &source, kinds: kinds, errors: &errors)
        if body["notify"] != nil { errors += WebhookInput.keepSecrets(of: existing.notify, in: &source.notify) }
        if body["config"] != nil { errors += maskedSecrets(source.config) }
        // A changed kind must re-validate the (possibly unchanged) config.
        if body["config"] == nil, body["kind"] != nil, errors.isEmpty, let kind = kinds.kind(named: source.kind) {
            errors += kind.validate(config: source.config)
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        if source.cron != existing.cron { source.nextSlotAt = firstSlot(source.cron, now: now) }
        source.updatedAt = now
        return source
    }

    /// A secret of the config that is the mask itself, with no stored value to keep: the
    /// upstream would get `***`.
    static func maskedSecrets(_ config: JSONObject) -> [FieldError] {
        SecretRedaction.maskedPaths(config).map {
            FieldError("config.\($0)", "holds \"***\", the mask of a secret, and no stored secret is there to keep; send the secret itself")
        }
    }

    /// The keys of the saved state that `updated`'s definition makes meaningless (a cursor
    /// of another field, or of another kind altogether).
    static func stateKeysInvalidated(from existing: Source, to updated: Source, kinds: SourceKindRegistry) -> [String] {
        guard existing.kind == updated.kind else { return Array(existing.state.keys) }
        let keys = kinds.kind(named: updated.kind)?.stateKeysInvalidated(from: existing.config, to: updated.config) ?? []
        // A key goes with its per-partition keys (`cursor@<partition>` of a child stream).
        return keys + existing.state.keys.filter { key in keys.contains { key.hasPrefix($0 + "@") } }
    }

    private static func apply(_ body: JSONObject, to source: inout Source, kinds: SourceKindRegistry, errors: inout [FieldError]) {
        for key in body.keys where !fields.contains(key) {
            errors.append(FieldError(key, "unknown field"))
        }
        if let v = body["name"] {
            if let name = v.stringValue, SourceName.isValid(name) { source.name = name }
            else { errors.append(FieldError("name", "must be 1–100 characters of A-Z a-z 0-9 . _ -, and not shaped like an id (src_ and 26 characters)")) }
        }
        if let v = body["kind"] {
            if let kind = v.stringValue, kinds.kind(named: kind) != nil { source.kind = kind }
            else { errors.append(FieldError("kind", "must be one of: \(kinds.names.joined(separator: ", "))")) }
        }
        if let v = body["config"] {
            if let config = v.objectValue {
                source.config = config
                if let kind = kinds.kind(named: source.kind) { errors += kind.validate(config: config) }
            } else {
                errors.append(FieldError("config", "must be an object, got \(v.typeName)"))
            }
        }
        if let v = body["schedule"] {
            switch v {
            case .null:
                source.schedule = nil
                source.cron = nil
            case .object(let o) where o[CronSchedule.CodingKeys.expression.stringValue] != nil:
                if let cron = cronSchedule(o, errors: &errors) {
                    source.cron = cron
                    source.schedule = nil
                }
            case .object(let o):
                if let every = o[Schedule.CodingKeys.everySeconds.stringValue]?.doubleValue, every >= 1, every <= 31_536_000, o.count == 1 {
                    source.schedule = Schedule(everySeconds: every)
                    source.cron = nil
                } else {
                    errors.append(FieldError("schedule.every_seconds", "must be a number of seconds between 1 and 31536000 (or give schedule.cron)"))
                }
            default: errors.append(FieldError("schedule", "must be an object or null, got \(v.typeName)"))
            }
        }
        if let v = body["priority"] {
            if let p = v.intValue, (-1000...1000).contains(p) { source.priority = p }
            else { errors.append(FieldError("priority", "must be an integer between -1000 and 1000")) }
        }
        if let v = body["retry"] {
            if let o = v.objectValue {
                var policy = source.retry
                typealias Key = RetryPolicy.CodingKeys
                let known = Set(Key.allCases.map(\.stringValue))
                for key in o.keys where !known.contains(key) { errors.append(FieldError("retry.\(key)", "unknown field")) }
                if let x = o[Key.maxAttempts.stringValue] {
                    if let i = x.intValue { policy.maxAttempts = i } else { errors.append(FieldError("retry.\(Key.maxAttempts.stringValue)", "must be an integer")) }
                }
                for (key, path) in [(Key.initialDelaySeconds, \RetryPolicy.initialDelaySeconds),
                                    (.maxDelaySeconds, \RetryPolicy.maxDelaySeconds), (.multiplier, \RetryPolicy.multiplier)] {
                    if let x = o[key.stringValue] {
                        if let d = x.doubleValue { policy[keyPath: path] = d } else { errors.append(FieldError("retry.\(key.stringValue)", "must be a number")) }
                    }
                }
                errors += policy.validationErrors()
                source.retry = policy
            } else {
                errors.append(FieldError("retry", "must be an object, got \(v.typeName)"))
            }
        }
        if let v = body["rate_limit"] {
            switch v {
            case .null: source.rateLimit = nil
            case .object(let o):
                let rps = o[RateLimit.CodingKeys.requestsPerSecond.stringValue]?.doubleValue
                // Checked before anything is computed from it: the default burst is the rate
                // rounded up, computed only for a rate inside the accepted range.
                let validRate = rps.flatMap { (0.001...100_000).contains($0) ? $0 : nil }
                let burstValue = o[RateLimit.CodingKeys.burst.stringValue]
                let burst = burstValue.map { $0.intValue } ?? validRate.map { max(1, Int($0.rounded(.up))) }
                let keyValue = o[RateLimit.CodingKeys.key.stringValue]
                let key = keyValue?.stringValue
                for name in o.keys.sorted() where RateLimit.CodingKeys(rawValue: name) == nil {
                    errors.append(FieldError("rate_limit.\(name)", "unknown field"))
                }
                if let keyValue, !keyValue.isNull, !(key.map { (1...200).contains($0.utf8.count) } ?? false) {
                    errors.append(FieldError("rate_limit.key", "must be a string of 1 to 200 bytes, or null"))
                } else if let rps = validRate, let burst, (1...100_000).contains(burst) {
                    source.rateLimit = RateLimit(requestsPerSecond: rps, burst: burst, key: key)
                } else {
                    if validRate == nil {
                        errors.append(FieldError("rate_limit.requests_per_second", "must be a number from 0.001 to 100000"))
                    }
                    if burstValue != nil, !(burst.map { (1...100_000).contains($0) } ?? false) {
                        errors.append(FieldError("rate_limit.burst", "must be an integer from 1 to 100000"))
                    }
                }
            default: errors.append(FieldError("rate_limit", "must be an object or null, got \(v.typeName)"))
            }
        }
        if let v = body["concurrency"] {
            typealias Key = ConcurrencyLimit.CodingKeys
            switch v {
            case .null: source.concurrency = nil
            case .object(let o):
                for key in o.keys.sorted() where Key(rawValue: key) == nil { errors.append(FieldError("concurrency.\(key)", "unknown field")) }
                let key = o[Key.key.stringValue]?.stringValue
                let limit = o[Key.limit.stringValue]?.intValue
                if let key, (1...200).contains(key.utf8.count), let limit, (1...10_000).contains(limit) {
                    source.concurrency = ConcurrencyLimit(key: key, limit: limit)
                } else {
                    errors.append(FieldError("concurrency", "needs key (a string of 1 to 200 bytes) and limit (an integer from 1 to 10000)"))
                }
            default: errors.append(FieldError("concurrency", "must be an object or null, got \(v.typeName)"))
            }
        }
        if let v = body["notify"] {
            source.notify = WebhookInput.targets(v, errors: &errors)
        }
        if let v = body["credential"] {
            // An id or a name here; the route resolves it to the credential's id.
            if v.isNull { source.credential = nil }
            else if let text = v.stringValue, (1...200).contains(text.utf8.count) { source.credential = text }
            else { errors.append(FieldError("credential", "must be a credential's id or name, or null")) }
        }
        if let v = body["min_trigger_interval_seconds"] {
            if let d = v.doubleValue, d >= 0, d <= 31_536_000 { source.minTriggerIntervalSeconds = d }
            else { errors.append(FieldError("min_trigger_interval_seconds", "must be a number of seconds between 0 and 31536000")) }
        }
    }
}

/// `schedule: {"cron", "timezone"?, "jitter_seconds"?, "missed"?}` (docs/queue.md, "Cron schedules").
private func cronSchedule(_ o: JSONObject, errors: inout [FieldError]) -> CronSchedule? {
    typealias Key = CronSchedule.CodingKeys
    // Failed when an error was added here (a flag set inside `fail` read to the compiler as
    // never changing, and it called the `nil` below unreachable).
    let before = errors.count
    func fail(_ field: String, _ message: String) { errors.append(FieldError(field, message)) }
    for key in o.keys.sorted() where Key(rawValue: key) == nil { fail("schedule.\(key)", "unknown field (a cron schedule takes cron, timezone, jitter_seconds, missed)") }
    var cron = CronSchedule(expression: "")
    var expression: CronExpression?
    if let text = o[Key.expression.stringValue]?.stringValue {
        do { expression = try CronExpression(text); cron.expression = expression!.text } catch { fail("schedule.cron", error.description) }
    } else {
        fail("schedule.cron", "must be a string of five fields")
    }
    if let v = o[Key.timezone.stringValue], !v.isNull {
        if let name = v.stringValue, TimeZoneNames.isKnown(name) { cron.timezone = name }
        else { fail("schedule.timezone", "must be a time zone database name, e.g. Europe/Berlin or UTC") }
    }
    if let v = o[Key.jitterSeconds.stringValue], !v.isNull {
        if let j = v.doubleValue, j >= 0, j <= 3600 { cron.jitterSeconds = j } else { fail("schedule.jitter_seconds", "must be a number of seconds from 0 to 3600") }
    }
    if let v = o[Key.missed.stringValue], !v.isNull {
        if let m = v.stringValue.flatMap(CronSchedule.Missed.init(rawValue:)) { cron.missed = m } else { fail("schedule.missed", "must be skip or one") }
    }
    if errors.count == before, let expression, let zone = TimeZone(identifier: cron.timezone), expression.next(after: Date(), in: zone) == nil {
        fail("schedule.cron", "never comes (no slot within eight years)")
    }
    return errors.count > before ? nil : cron
}

/// Reads a JSON request body into a value, with the API's error for malformed input.
enum RequestBody {
    static func object(_ bytes: [UInt8], allowEmpty: Bool = false) throws(Problem) -> JSONObject {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            if allowEmpty { return [:] }
            throw Problem.malformedJSON("The request body is empty; a JSON object is required.")
        }
        let value: JSONValue
        do {
            value = try StrictJSON.parse(bytes)
        } catch {
            switch error {
            case .syntax(let offset, let reason):
                throw Problem.malformedJSON("The request body is not valid JSON: \(reason) (byte \(offset)).")
            case .duplicate(let path):
                throw Problem.duplicateMember(path)
            case .outOfRange(let path):
                throw Problem.validation([FieldError(path.isEmpty ? "body" : path, "is a number past the range of a 64-bit float")])
            case .nul(let path):
                throw Problem.validation([FieldError(path.isEmpty ? "body" : path, "must not contain U+0000 (NUL)")])
            }
        }
        guard case .object(let o) = value else {
            throw Problem.validation([FieldError("body", "must be a JSON object, got \(value.typeName)")])
        }
        return o
    }
}

/// Time zone names as the time zone database lists them (`Europe/Berlin`, `UTC`): a name is
/// checked against that list, not only opened, since opening reads a file by the name's
/// C string (`Europe/Berlin\u{0}x` opened Berlin and was stored with its NUL).
enum TimeZoneNames {
    static let known: Set<String> = Set(TimeZone.knownTimeZoneIdentifiers).union(["UTC", "GMT"])

    static func isKnown(_ name: String) -> Bool {
        name.utf8.count <= 64 && name.utf8.allSatisfy { $0 < 0x80 } && known.contains(name) && TimeZone(identifier: name) != nil
    }
}
