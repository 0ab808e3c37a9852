import Foundation
import SyncCore

/// The `{name}` placeholders of an http-json config: where the values a sync computes (the
/// incremental cursor, the page's cursor, page number or offset, a partition's values) go
/// in the URL, the query and a POST body (docs/sources.md, "Placeholders").
///
/// - In the URL (path and query) and in `query` values a placeholder may sit inside other
///   text (`WHERE SystemModstamp > {since}`); in the URL its value is percent-encoded.
/// - In a `body`, only a string that is exactly one placeholder (`"after": "{cursor}"`) is
///   replaced, by the value with its JSON type (a number stays a number), so the braces of a
///   GraphQL query are never mistaken for one.
/// - Only the names the sync knows are placeholders; other braces are text.
/// - A placeholder whose value the sync does not have yet (no cursor on the first page) drops
///   the query parameter or body member that is exactly it; anywhere else it is an error
///   the config check reports before any sync runs.
public enum RequestTemplate {
    /// The names a sync fills: `since`, `until`, `cursor`, `page`, `offset`.
    public static let syncNames: [String] = ["since", "until", "cursor", "page", "offset"]

    /// The placeholder names in `text` among `known`, in order of appearance.
    public static func names(in text: String, known: Set<String>) -> [String] {
        var found: [String] = []
        var rest = text[...]
        while let open = rest.firstIndex(of: "{") {
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "}") else { break }
            let name = String(after[..<close])
            if known.contains(name) {
                found.append(name)
                rest = after[after.index(after: close)...]
            } else {
                rest = after
            }
        }
        return found
    }

    /// The whole-value placeholder `text` is (`"{cursor}"`), if it is one of `known`.
    public static func whole(_ text: String, known: Set<String>) -> String? {
        guard text.hasPrefix("{"), text.hasSuffix("}"), text.count >= 3 else { return nil }
        let name = String(text.dropFirst().dropLast())
        return known.contains(name) ? name : nil
    }

    /// `text` with every known placeholder replaced by its value's text (`encode`d); `nil` if
    /// one of them has no value.
    public static func render(_ text: String, values: [String: JSONValue], known: Set<String>,
                              encode: (String) -> String = { $0 }) -> String? {
        var out = ""
        var rest = text[...]
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "}") else {
                rest = rest[open...]
                break
            }
            let name = String(after[..<close])
            if known.contains(name) {
                guard let value = values[name], let text = JSONValue.scalarText(value) else { return nil }
                out += encode(text)
                rest = after[after.index(after: close)...]
            } else {
                out += "{"
                rest = after
            }
        }
        return out + rest
    }

    /// The placeholders of a body template (whole-value strings only), anywhere in it.
    public static func bodyNames(_ body: JSONValue, known: Set<String>) -> [String] {
        switch body {
        case .string(let s): whole(s, known: known).map { [$0] } ?? []
        case .array(let items): items.flatMap { bodyNames($0, known: known) }
        case .object(let members): members.keys.sorted().flatMap { bodyNames(members[$0]!, known: known) }
        default: []
        }
    }

    /// `body` with its placeholders replaced; an object member that is a placeholder without
    /// a value is left out (an array element becomes `null`).
    public static func renderBody(_ body: JSONValue, values: [String: JSONValue], known: Set<String>) -> JSONValue? {
        switch body {
        case .string(let s):
            guard let name = whole(s, known: known) else { return body }
            return values[name]
        case .array(let items):
            return .array(items.map { renderBody($0, values: values, known: known) ?? .null })
        case .object(let members):
            var out: JSONObject = [:]
            for (key, value) in members {
                if let rendered = renderBody(value, values: values, known: known) { out[key] = rendered }
            }
            return .object(out)
        default:
            return body
        }
    }

    /// Percent-encoding for a value placed in a URL: RFC 3986 unreserved characters stay.
    public static func urlEncode(_ text: String) -> String { QueryString.encode(text) }
}
