import Foundation
import HTTPTypes
import SyncCore
import SyncStore

extension Problem {
    /// The one place where store errors become API problems.
    static func from(_ error: SyncStoreError) -> Problem {
        switch error {
        case .notFound(let what):
            return .notFound("No \(what).")
        case .nameTaken(let name):
            return Problem(.conflict, code: "name_taken", title: "The name is taken",
                           detail: "A source named \(name) already exists.")
        case .syncAlreadyActive(let id, let status):
            return Problem(.conflict, code: "sync_already_active", title: "A sync is already active for this source",
                           detail: "The source has sync \(id) in status \(status.rawValue).",
                           extra: ["active_sync_id": .string(id)])
        case .invalidState(let current, let message):
            return Problem(.conflict, code: "invalid_state", title: "The sync is not in a state that allows this",
                           detail: "\(message) Current status: \(current.rawValue).",
                           extra: ["current_status": .string(current.rawValue)])
        case .sourceInUse(let id):
            return Problem(.conflict, code: "source_in_use", title: "The source has an active sync",
                           detail: "Sync \(id) is active; cancel it or wait for it to finish.",
                           extra: ["active_sync_id": .string(id)])
        case .rateLimited(let seconds):
            // From stored times and settings: clamped, never a conversion that traps.
            let whole = Int(clamping: seconds.rounded(.up), to: 1...31_536_000)
            var headers = HTTPFields()
            headers[.retryAfter] = String(whole)
            return Problem(.tooManyRequests, code: "rate_limited", title: "Too many triggers",
                           detail: "The source's min_trigger_interval_seconds has not passed since its last sync was queued.",
                           extra: ["retry_after_seconds": .number(Double(whole))], headers: headers)
        case .idempotencyKeyReused:
            return .validation([FieldError("Idempotency-Key", "was already used with a different request body")])
        case .leaseLost, .illegalTransition, .checkpointBehind:
            return .internalError()
        case .unavailable(let detail):
            return .unavailable(detail)
        case .credentialNameTaken(let name):
            return Problem(.conflict, code: "name_taken", title: "The name is taken",
                           detail: "A credential named \(name) already exists.")
        case .credentialInUse(let sourceID, let count):
            return Problem(.conflict, code: "credential_in_use", title: "Sources use the credential",
                           detail: "\(count) source(s) use the credential, \(sourceID) among them; give them another credential or delete them first.",
                           extra: ["source_id": .string(sourceID), "sources": .number(Double(count))])
        case .unstorable(let detail):
            return .validation([FieldError("body", detail)])
        }
    }
}
