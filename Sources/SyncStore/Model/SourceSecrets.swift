import Foundation
import SyncCore

/// The secrets of a source's own definition, sealed at rest like a credential's
/// (docs/credentials.md, "Secrets at rest"): the values SecretRedaction masks in its config
/// (every value under `headers`, every string under a secret-named key, every URL holding
/// user info or a secret-named query parameter) and its webhooks' secrets.
extension SecretKeyring {
    /// `source` as stored: its secrets sealed.
    func sealSecrets(of source: Source) -> Source {
        var source = source
        let context = Self.context(of: source.id)
        source.config = Self.walk(source.config, underSecret: false) { text, secretPosition in
            if secretPosition { return seal(text, context: context) }
            // A URL is sealed whole when it holds a secret (never without a key: a URL as
            // it is cannot read as a sealed value).
            return isSealing && SecretRedaction.redactURL(text) != text ? seal(text, context: context) : text
        }
        for i in source.notify.indices {
            source.notify[i].secret = source.notify[i].secret.map { seal($0, context: context) }
        }
        return source
    }

    /// The context a source's sealed values are bound to (its deliveries' secrets too).
    static func context(of sourceID: String) -> String { "source:" + sourceID }

    /// `source` as read for showing and running: a value that does not open (damaged, or
    /// sealed with a key not given) becomes `"***"`, and `unreadable` says so. A source is
    /// always readable, so it can be repaired with new secrets or deleted.
    func openSecretsLeniently(of source: Source) -> (source: Source, unreadable: Bool) {
        var unreadable = false
        var source = source
        let context = Self.context(of: source.id)
        source.config = Self.walk(source.config, underSecret: false) { text, secretPosition in
            guard secretPosition || text.hasPrefix(Self.sealedPrefix) else { return text }
            if let plain = try? open(text, context: context) { return plain }
            unreadable = true
            return SecretRedaction.maskText
        }
        for i in source.notify.indices {
            guard let secret = source.notify[i].secret else { continue }
            if let plain = try? open(secret, context: context) { source.notify[i].secret = plain } else {
                unreadable = true
                source.notify[i].secret = SecretRedaction.maskText
            }
        }
        return (source, unreadable)
    }

    /// `source` as read: its secrets opened. Throws ``SecretKeyError`` when one was sealed
    /// with a key this keyring lacks.
    func openSecrets(of source: Source) throws -> Source {
        var source = source
        let context = Self.context(of: source.id)
        source.config = try Self.walk(source.config, underSecret: false) { text, secretPosition in
            secretPosition || text.hasPrefix(Self.sealedPrefix) ? try open(text, context: context) : text
        }
        for i in source.notify.indices {
            source.notify[i].secret = try source.notify[i].secret.map { try open($0, context: context) }
        }
        return source
    }

    /// `object` with `transform` applied to each string at a secret position (`true`) or
    /// elsewhere (`false`), by the rules of ``SecretRedaction/redact(_:underHeaders:)``.
    static func walk(_ object: JSONObject, underSecret: Bool,
                     _ transform: (String, Bool) throws -> String) rethrows -> JSONObject {
        var out = object
        for (key, value) in object {
            let secret = underSecret || SecretRedaction.isSecretKey(key)
            switch value {
            case .object(let inner):
                out[key] = .object(try walk(inner, underSecret: secret || key == "headers", transform))
            case .string(let text):
                out[key] = .string(try transform(text, secret))
            default:
                break
            }
        }
        return out
    }

    /// The ids of the keys that sealed values in a stored text (any column holding JSON).
    static func keyIDs(in stored: String) -> Set<String> {
        var ids = Set<String>()
        var rest = Substring(stored)
        while let range = rest.range(of: sealedPrefix) {
            let after = rest[range.upperBound...]
            if let colon = after.firstIndex(of: ":"), after.distance(from: after.startIndex, to: colon) <= 16 {
                ids.insert(String(after[..<colon]))
            }
            rest = after
        }
        return ids
    }
}
