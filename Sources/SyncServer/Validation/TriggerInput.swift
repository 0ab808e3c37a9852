import Foundation
import Hummingbird
import SyncCore

/// The body of `POST /v1/sources/{id}/syncs` (`mode`, `priority`, both optional) and its
/// `Idempotency-Key`, checked against the source.
struct TriggerInput {
    var mode: SyncMode
    var priority: Int
    var idempotencyKey: String?

    /// What an idempotency key is compared on when it repeats.
    var fingerprint: String { "\(mode.rawValue)|\(priority)" }

    static func parse(_ bytes: [UInt8], idempotencyKey key: String?, source: Source) throws -> TriggerInput {
        let body = try RequestBody.object(bytes, allowEmpty: true)
        var errors: [FieldError] = []
        for key in body.keys where key != "mode" && key != "priority" { errors.append(FieldError(key, "unknown field")) }
        var mode = source.defaultMode
        if let m = body["mode"] {
            if let s = m.stringValue, let parsed = SyncMode(rawValue: s) { mode = parsed }
            else { errors.append(FieldError("mode", "must be one of: \(SyncMode.allCases.map(\.rawValue).joined(separator: ", "))")) }
        }
        var priority = source.priority
        if let p = body["priority"] {
            if let i = p.intValue, (-1000...1000).contains(i) { priority = i }
            else { errors.append(FieldError("priority", "must be an integer between -1000 and 1000")) }
        }
        if mode == .incremental && !source.supportsIncremental {
            errors.append(FieldError("mode", "the source has no incremental config; use full"))
        }
        if let key, !(1...255).contains(key.utf8.count) {
            errors.append(FieldError("Idempotency-Key", "must be 1–255 characters"))
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        return TriggerInput(mode: mode, priority: priority, idempotencyKey: key)
    }
}
