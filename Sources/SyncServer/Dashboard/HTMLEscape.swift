import Mustache

/// HTML escaping by bytes, for every value a dashboard page shows (text and attribute values).
///
/// The template engine's own escaper walks Swift `Character`s, so `"` followed by a combining
/// mark (U+0301, U+200D, U+FE0F) is one grapheme that matches no entry and went out raw: an
/// attribute could be closed by a value from an upstream. Escaping the five characters by
/// their UTF-8 bytes cannot be fooled by what follows them.
enum HTMLEscape {
    static func escape(_ text: String) -> String {
        let utf8 = text.utf8
        // Most values need nothing: return them without copying.
        guard utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count + 16)
        for byte in utf8 {
            switch byte {
            case 0x26: out.append(contentsOf: "&amp;".utf8)
            case 0x3C: out.append(contentsOf: "&lt;".utf8)
            case 0x3E: out.append(contentsOf: "&gt;".utf8)
            case 0x22: out.append(contentsOf: "&quot;".utf8)
            case 0x27: out.append(contentsOf: "&#39;".utf8)
            default: out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The engine's content type for every dashboard template (each is registered with
    /// `{{%CONTENT_TYPE:…}}` in front, partials included: the engine resets a partial to its
    /// own HTML escaping otherwise).
    struct ContentType: MustacheContentType {
        static let name = "HTML_BY_BYTES"
        func escapeText(_ text: String) -> String { HTMLEscape.escape(text) }
    }

    static let pragma = "{{%CONTENT_TYPE:\(ContentType.name)}}"
}
