import Foundation

/// Write-only secrets (docs/api.md, "Secrets"; docs/sources.md, "Secrets"): every value under
/// `headers`; every key named like a credential, at any depth (see ``isSecretKey(_:)``);
/// and, inside any URL in the config, its userinfo and its credential-named query parameters.
public enum SecretRedaction {
    public static let maskText = "***"
    public static let mask = JSONValue.string(maskText)

    /// Names that hold a secret wherever they appear in the name (after lowercasing and
    /// dropping `-`, `_`, `.` and spaces: `X-Api-Key` reads `xapikey`).
    static let secretParts = ["token", "password", "passwd", "secret", "apikey", "accesskey", "privatekey",
                              "authorization", "signature", "credential", "cookie", "session", "jwt", "bearer", "assertion"]
    /// Names that are a secret only as a whole word (or as its end: `x-auth`), since as a part
    /// they are ordinary (`primary_key`, `author`, `design`).
    static let secretWords = ["key", "auth", "sig", "pass", "pwd"]

    /// Whether `text` contains `part`, by bytes. (`String.contains` with Foundation imported
    /// goes through `NSString`; on every source response it was 6 % of a list's profile.)
    static func has(_ text: String, _ part: String) -> Bool {
        var text = text, part = part  // withUTF8 needs a mutable string; a native one is not copied
        return text.withUTF8 { haystack in
            part.withUTF8 { needle in
                guard let first = needle.first else { return true }
                guard needle.count <= haystack.count else { return false }
                for start in 0...(haystack.count - needle.count) where haystack[start] == first {
                    if memcmp(haystack.baseAddress! + start, needle.baseAddress!, needle.count) == 0 { return true }
                }
                return false
            }
        }
    }

    public static func isSecretKey(_ key: String) -> Bool {
        let k = String(key.lowercased().unicodeScalars.filter { !"-_. ".unicodeScalars.contains($0) })
        if secretParts.contains(where: { has(k, $0) }) { return true }
        if secretWords.contains(k) { return true }
        return k.count > 4 && (k.hasSuffix("auth") || k.hasSuffix("apikey"))
    }

    public static func redact(_ object: JSONObject, underHeaders: Bool = false) -> JSONObject {
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
            } else if case .string(let text) = value {
                out[key] = .string(redactURL(text))
            } else {
                out[key] = value
            }
        }
        return out
    }

    /// `http://alice:hunter2@host/d?access_token=tok&x=1` → `http://***@host/d?access_token=***&x=1`;
    /// any other text as it is.
    public static func redactURL(_ text: String) -> String {
        guard has(text, "://"), var components = URLComponents(string: text) else { return text }
        var changed = false
        if components.percentEncodedUser != nil || components.percentEncodedPassword != nil {
            components.percentEncodedUser = "***"
            components.percentEncodedPassword = nil
            changed = true
        }
        if let query = components.percentEncodedQuery {
            let items = query.split(separator: "&", omittingEmptySubsequences: false).map { item -> String in
                let name = item.prefix { $0 != "=" }
                let decoded = String(name).removingPercentEncoding ?? String(name)
                guard item.contains("="), isSecretKey(decoded) else { return String(item) }
                changed = true
                return name + "=***"
            }
            components.percentEncodedQuery = items.joined(separator: "&")
        }
        return changed ? (components.string ?? text) : text
    }

    /// RFC 7396 merge patch of `patch` onto `base`, where a secret given as `"***"` (or a URL
    /// given exactly as it was shown, secrets masked) keeps the stored value, so a client can
    /// send back what it read.
    public static func merge(_ base: JSONObject, patch: JSONObject, underHeaders: Bool = false) -> JSONObject {
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
                } else if case .string(let shown)? = base[key], shown != redactURL(shown), value == .string(redactURL(shown)) {
                    // the stored URL as it was shown: keep its secrets
                } else if case .string(let stored)? = base[key], case .string(let sent) = value {
                    // A URL sent back with other changes: its masked secrets from the stored one.
                    out[key] = .string(restoreMaskedURL(sent, from: stored))
                } else {
                    out[key] = value
                }
            }
        }
        return out
    }

    /// `sent` (a URL whose secrets were sent back as `***`, its other parts changed) with each
    /// masked secret taken from `stored`: the user info, and each secret-named query
    /// parameter by name. What `stored` does not have stays masked.
    public static func restoreMaskedURL(_ sent: String, from stored: String) -> String {
        guard has(sent, maskText), has(sent, "://"), var new = URLComponents(string: sent), let old = URLComponents(string: stored) else { return sent }
        if new.percentEncodedUser == maskText, new.percentEncodedPassword == nil, old.percentEncodedUser != nil {
            new.percentEncodedUser = old.percentEncodedUser
            new.percentEncodedPassword = old.percentEncodedPassword
        }
        if let query = new.percentEncodedQuery {
            let storedItems = (old.percentEncodedQuery ?? "").split(separator: "&").map { item in
                (name: String(item.prefix { $0 != "=" }), value: item.firstIndex(of: "=").map { String(item[item.index(after: $0)...]) })
            }
            new.percentEncodedQuery = query.split(separator: "&", omittingEmptySubsequences: false).map { item -> String in
                let name = String(item.prefix { $0 != "=" })
                guard item.hasSuffix("=" + maskText), isSecretKey(name.removingPercentEncoding ?? name),
                      let value = storedItems.first(where: { $0.name == name })?.value else { return String(item) }
                return name + "=" + value
            }.joined(separator: "&")
        }
        return new.string ?? sent
    }

    /// The paths (`headers.Authorization`, `url`) in `config` whose secret is the mask
    /// itself: a secret sent as `***` with nothing stored to keep.
    public static func maskedPaths(_ config: JSONObject, prefix: String = "", underSecret: Bool = false) -> [String] {
        var out: [String] = []
        for (key, value) in config.sorted(by: { $0.key < $1.key }) {
            let secret = underSecret || isSecretKey(key)
            switch value {
            case .object(let inner):
                out += maskedPaths(inner, prefix: prefix + key + ".", underSecret: secret || key == "headers")
            case .string(let text) where secret && text == maskText:
                out.append(prefix + key)
            case .string(let text) where has(text, maskText) && has(text, "://"):
                let probe = text.replacingOccurrences(of: maskText, with: "x")
                if redactURL(probe) != probe && redactURL(probe) == redactURL(text.replacingOccurrences(of: maskText, with: "y")) { out.append(prefix + key) }
            default:
                break
            }
        }
        return out
    }

    /// Any JSON value with its secrets masked: objects as ``redact(_:underHeaders:)``, URLs in
    /// strings as ``redactURL(_:)`` (a checkpoint holding the next link an upstream sent).
    public static func redact(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let o): .object(redact(o))
        case .array(let a): .array(a.map(redact))
        case .string(let s): .string(redactText(s))
        default: value
        }
    }

    /// Free text (an error message that quotes what an upstream sent) with secrets masked:
    /// every `name=value` whose name is a credential's, wherever it stands (in a URL, a query,
    /// a fragment or prose), and the userinfo of every `scheme://user:password@`.
    public static func redactText(_ text: String) -> String {
        guard has(text, "=") || has(text, "@") else { return text }
        let separators: Set<Character> = ["&", "?", "#", ";", ",", " ", "\t", "\n", "\"", "'", "<", ">", "(", ")", "[", "]", "{", "}", "|", "/"]
        var out = ""
        var token = ""
        func flush() {
            if let eq = token.firstIndex(of: "="), eq != token.startIndex {
                let name = String(token[..<eq])
                if isSecretKey(name.removingPercentEncoding ?? name) { token = name + "=***" }
            }
            out += token
            token = ""
        }
        for character in text {
            if separators.contains(character) {
                flush()
                out.append(character)
            } else {
                token.append(character)
            }
        }
        flush()
        // scheme://user:password@host: the userinfo, whatever it holds.
        var result = ""
        var rest = Substring(out)
        while let scheme = rest.range(of: "://") {
            result += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            let authorityEnd = rest.firstIndex { "/?# \"'<>".contains($0) } ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@") {
                result += "***"
                rest = rest[at...]
            }
        }
        return result + rest
    }
}
