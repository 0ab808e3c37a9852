/// The `Link` header (RFC 8288 §3): comma-separated link-values, each a `<target>` followed
/// by `;`-separated parameters whose values are a token or a quoted-string (RFC 9110 §5.6.4,
/// with `\` escapes), which may hold `;`, `,`, `<` or `>` without ending anything. Only a
/// link's first `rel` counts (§3.3); relation types are space-separated and compared without
/// case. A header that does not follow the grammar is ``Malformed``: the caller reports it,
/// rather than guess at a next page or take it for the last one.
enum LinkHeader {
    struct Malformed: Error, CustomStringConvertible {
        let offset: Int
        var description: String { "the Link header does not follow RFC 8288 (at byte \(offset))" }
    }

    /// The text of the first link whose relation types include `next`, whatever the target
    /// holds (a target that is not a usable URL is then the caller's error to report).
    static func nextTarget(_ header: String?) throws(Malformed) -> Substring? {
        guard let header else { return nil }
        var scanner = Scanner(text: header)
        var next: Substring?
        // The whole header is read: one that breaks the grammar anywhere is not trusted at all.
        while let link = try scanner.nextLink() {
            if next == nil, link.relations.contains("next") { next = link.target }
        }
        return next
    }

    private struct Scanner {
        let text: String
        let bytes: String.UTF8View
        var index: String.Index

        init(text: String) {
            self.text = text
            self.bytes = text.utf8
            self.index = text.utf8.startIndex
        }

        var peek: UInt8? { index < bytes.endIndex ? bytes[index] : nil }
        var malformed: Malformed { Malformed(offset: bytes.distance(from: bytes.startIndex, to: index)) }

        mutating func skipSpace() {
            while let b = peek, b == 0x20 || b == 0x09 { index = bytes.index(after: index) }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            index = bytes.index(after: index)
            return true
        }

        /// The next link-value with its relation types (lowercased), `nil` at the end.
        mutating func nextLink() throws(Malformed) -> (target: Substring, relations: [Substring])? {
            // Empty list elements are allowed (RFC 9110 §5.6.1).
            while true {
                skipSpace()
                if !take(UInt8(ascii: ",")) { break }
            }
            guard peek != nil else { return nil }
            guard take(UInt8(ascii: "<")) else { throw malformed }
            let start = index
            while let b = peek, b != UInt8(ascii: ">") { index = bytes.index(after: index) }
            guard peek != nil else { throw malformed }
            let target = text[start..<index]
            index = bytes.index(after: index)
            var rel: Substring?
            while true {
                skipSpace()
                guard let b = peek, b != UInt8(ascii: ",") else { break }
                guard take(UInt8(ascii: ";")) else { throw malformed }
                skipSpace()
                // An empty parameter (`; ;`, or `;` at the end) is skipped.
                if peek == nil || peek == UInt8(ascii: ";") || peek == UInt8(ascii: ",") { continue }
                let name = token()
                guard !name.isEmpty else { throw malformed }
                skipSpace()
                var value: Substring = ""
                if take(UInt8(ascii: "=")) {
                    skipSpace()
                    if peek == UInt8(ascii: "\"") {
                        value = try quoted()
                    } else {
                        value = token()
                        guard !value.isEmpty else { throw malformed }
                    }
                }
                if rel == nil, name.lowercased() == "rel" { rel = value }
            }
            let relations = (rel ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" }).map { Substring($0.lowercased()) }
            return (target, relations)
        }

        /// A token (RFC 9110 §5.6.2): `tchar`s, possibly none.
        mutating func token() -> Substring {
            let start = index
            while let b = peek, HTTPToken.isTokenChar(b) { index = bytes.index(after: index) }
            return text[start..<index]
        }

        /// A quoted-string's content, its escapes resolved.
        mutating func quoted() throws(Malformed) -> Substring {
            index = bytes.index(after: index)  // the opening quote
            var content: [UInt8] = []
            while let b = peek {
                index = bytes.index(after: index)
                switch b {
                case UInt8(ascii: "\""):
                    return Substring(decoding: content, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let escaped = peek else { throw malformed }
                    content.append(escaped)
                    index = bytes.index(after: index)
                default:
                    content.append(b)
                }
            }
            throw malformed
        }
    }
}

/// RFC 9110 §5.6.2 tokens: what a header's name, a parameter's name or a `Link` rel is made of.
public enum HTTPToken {
    public static func isTokenChar(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
    }

    /// A whole token: not empty, every byte a token character.
    public static func isToken(_ text: String) -> Bool { !text.isEmpty && text.utf8.allSatisfy(isTokenChar) }
}
