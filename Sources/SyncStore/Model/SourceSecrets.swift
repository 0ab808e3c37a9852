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
        source.config = Self.walk(source.config, underSecret: false) { text, secretPosition in
            if secretPosition { return seal(text) }
            // A URL is sealed whole when it holds a secret (never without a key: a URL as
            // it is cannot read as a sealed value).
            return isSealing && SecretRedaction.redactURL(text) != text ? seal(text) : text
        }
        for i in source.notify.indices {
            source.notify[i].secret = source.notify[i].secret.map { seal($0) }
        }
        return source
    }

    /// `source` as read: its secrets opened. Throws ``SecretKeyError`` when one was sealed
    /// with a key this keyring lacks.
    func openSecrets(of source: Source) throws -> Source {
        var source = source
        source.config = try Self.walk(source.config, underSecret: false) { text, secretPosition in
            secretPosition || text.hasPrefix(Self.sealedPrefix) ? try open(text) : text
        }
        for i in source.notify.indices {
            source.notify[i].secret = try source.notify[i].secret.map { try open($0) }
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
