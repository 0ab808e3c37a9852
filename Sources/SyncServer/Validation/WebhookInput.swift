import Foundation
import SyncConnectors
import SyncCore

/// A source's `notify` list from a request body (docs/webhooks.md).
enum WebhookInput {
    static let maxTargets = 10
    static let maxURLBytes = 2048
    static let maxSecretBytes = 1024

    /// The targets of `value` (an array, or `null` for none), every problem in `errors`.
    static func targets(_ value: JSONValue, errors: inout [FieldError]) -> [WebhookTarget] {
        if value.isNull { return [] }
        guard let items = value.arrayValue else {
            errors.append(FieldError("notify", "must be an array of webhooks or null, got \(value.typeName)"))
            return []
        }
        guard items.count <= maxTargets else {
            errors.append(FieldError("notify", "has \(items.count) webhooks; at most \(maxTargets)"))
            return []
        }
        var out: [WebhookTarget] = []
        for (i, item) in items.enumerated() {
            let path = "notify[\(i)]"
            guard let o = item.objectValue else {
                errors.append(FieldError(path, "must be an object with url, events and secret, got \(item.typeName)"))
                continue
            }
            typealias Key = WebhookTarget.CodingKeys
            let known = Set(Key.allCases.map(\.stringValue))
            for key in o.keys.sorted() where !known.contains(key) { errors.append(FieldError("\(path).\(key)", "unknown field")) }
            var target = WebhookTarget(url: "")
            if let text = o[Key.url.stringValue]?.stringValue, let problem = urlProblem(text) {
                errors.append(FieldError("\(path).url", problem))
            } else if let text = o[Key.url.stringValue]?.stringValue {
                target.url = text
            } else {
                errors.append(FieldError("\(path).url", "is required: an absolute http or https URL"))
            }
            if let v = o[Key.events.stringValue], !v.isNull {
                let names = v.arrayValue?.compactMap(\.stringValue) ?? []
                let events = names.compactMap(WebhookEvent.init(rawValue:))
                if names.isEmpty || events.count != v.arrayValue?.count {
                    errors.append(FieldError("\(path).events", "must be a non-empty list of: \(WebhookEvent.allCases.map(\.rawValue).joined(separator: ", "))"))
                } else {
                    target.events = WebhookEvent.allCases.filter(events.contains)
                }
            }
            if let v = o[Key.secret.stringValue], !v.isNull {
                if let secret = v.stringValue, (1...maxSecretBytes).contains(secret.utf8.count) {
                    target.secret = secret
                } else {
                    errors.append(FieldError("\(path).secret", "must be a string of 1 to \(maxSecretBytes) bytes, or null"))
                }
            }
            out.append(target)
        }
        return out
    }

    /// Why `text` cannot be a webhook URL, or `nil`.
    static func urlProblem(_ text: String) -> String? {
        guard text.utf8.count <= maxURLBytes else { return "is longer than \(maxURLBytes) bytes" }
        guard let url = HTTPURL.parse(text) else { return "must be an absolute http or https URL (a port, if any, in 1...65535)" }
        if url.user != nil || url.password != nil { return "must not carry credentials in the URL; use secret for signing" }
        return nil
    }

    /// A patch that sends webhooks back as they were shown keeps what is stored: a URL shown
    /// with `***` in place of a secret query value (`?api_key=***`) is the stored URL again,
    /// and `"secret": "***"` the stored secret. Each target is matched to the stored webhook
    /// at its own position when that one is shown the same (so two webhooks of one URL keep
    /// their own secrets), else to the first stored webhook shown the same; never by the
    /// text of a URL alone, which `***` makes ambiguous.
    static func keepSecrets(of stored: [WebhookTarget], in targets: inout [WebhookTarget]) -> [FieldError] {
        var errors: [FieldError] = []
        func shownSame(_ kept: WebhookTarget, _ sent: String) -> Bool {
            kept.url == sent || SecretRedaction.redactURL(kept.url) == sent
        }
        for i in targets.indices {
            let sent = targets[i].url
            let wantsSecret = targets[i].secret == SecretRedaction.maskText
            let candidates = (stored.indices.contains(i) ? [stored[i]] : []) + stored
            let match = candidates.first { shownSame($0, sent) && (!wantsSecret || $0.secret != nil) }
            if let match, sent.contains(SecretRedaction.maskText) { targets[i].url = match.url }
            guard wantsSecret else { continue }
            if let match {
                targets[i].secret = match.secret
            } else {
                errors.append(FieldError("notify[\(i)].secret", "\"***\" keeps a stored secret, and no stored webhook shown as this one has one"))
            }
        }
        // A URL still holding the mask was not sent back as shown: it would deliver to `***`.
        return errors + maskedURLs(targets, "holds \"***\" and matches no stored webhook shown so; send the full URL")
    }

    /// A field error, saying `why`, for every target whose URL holds the mask: stored, it
    /// would deliver to `***` and could never be sent back as shown.
    static func maskedURLs(_ targets: [WebhookTarget], _ why: String) -> [FieldError] {
        targets.indices.filter { targets[$0].url.contains(SecretRedaction.maskText) }
            .map { FieldError("notify[\($0)].url", why) }
    }

    /// Every target's URL under the egress policy: a blocked one is a validation error
    /// (a name that does not resolve now is accepted; its deliveries retry).
    static func checkEgress(_ targets: [WebhookTarget], policy: EgressPolicy) async -> [FieldError] {
        var errors: [FieldError] = []
        for (i, target) in targets.enumerated() {
            guard let url = URL(string: target.url), let host = url.host else { continue }
            let port = url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80)
            do {
                _ = try await policy.vet(host: host, port: port)
            } catch let error as SyncError where error.code == .egressBlocked {
                errors.append(FieldError("notify[\(i)].url", error.message))
            } catch {}
        }
        return errors
    }
}
