import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// What a dashboard page must be, checked on its HTML: it parses (the pages are written as
/// well-formed markup, so a strict XML parser reads them: an unclosed or misnested tag, an
/// unquoted attribute or a stray `&` fails), ids are unique, every form control has a label
/// (a `<label for>` naming it, or an enclosing `<label>`), and nothing is loaded from
/// anywhere but the page's own origin.
public struct PageCheck {
    public struct Element: Sendable {
        public var name: String
        public var attributes: [String: String]
        public var insideLabel: Bool
    }

    public private(set) var elements: [Element] = []
    public private(set) var parseError: String?
    public private(set) var text = ""

    public init(html: String) {
        // The doctype is HTML's, not XML's; the rest must stand as is.
        let body = html.replacingOccurrences(of: "<!DOCTYPE html>", with: "")
        let delegate = Collector()
        let parser = XMLParser(data: Data(body.utf8))
        parser.delegate = delegate
        let parsed = parser.parse()
        // The parser's own verdict, and a check of our own that every element closes where
        // it should (FoundationXML on Linux was seen to recover from a misnested tag).
        if let error = delegate.error ?? (parsed ? nil : parser.parserError.map { "\($0)" } ?? "parse error") {
            parseError = "line \(parser.lineNumber), column \(parser.columnNumber): \(error)"
        } else if !delegate.open.isEmpty {
            parseError = "unclosed <\(delegate.open.joined(separator: "> <"))>"
        }
        elements = delegate.elements
        text = delegate.text
    }

    /// Every problem found; empty for a good page.
    public var problems: [String] {
        if let parseError { return ["does not parse: \(parseError)"] }
        var out: [String] = []
        var seen: Set<String> = []
        for e in elements {
            if let id = e.attributes["id"] {
                if seen.contains(id) { out.append("id \(id) is used twice") }
                seen.insert(id)
            }
        }
        let labelled = Set(elements.filter { $0.name == "label" }.compactMap { $0.attributes["for"] })
        for e in elements where ["input", "select", "textarea", "progress", "meter"].contains(e.name) {
            if e.attributes["type"] == "hidden" { continue }
            let named = e.attributes["id"].map(labelled.contains) ?? false
            if !named && !e.insideLabel && e.attributes["aria-label"] == nil {
                out.append("<\(e.name) id=\(e.attributes["id"] ?? "?") name=\(e.attributes["name"] ?? "?")> has no label")
            }
        }
        for e in elements where e.name == "button" || e.name == "a" {
            // Text is checked by the browser test; here only that links go nowhere else.
            if let href = e.attributes["href"], Self.isExternal(href) { out.append("link to \(href) leaves the origin") }
        }
        for e in elements {
            for attribute in ["src", "action", "data", "poster", "srcset"] {
                if let url = e.attributes[attribute], Self.isExternal(url) { out.append("<\(e.name) \(attribute)=\(url)> loads from elsewhere") }
            }
            if e.name == "link", let href = e.attributes["href"], Self.isExternal(href) { out.append("<link href=\(href)> loads from elsewhere") }
            if e.name == "script" && e.attributes["src"] == nil { out.append("an inline <script>") }
            if e.attributes["style"] != nil { out.append("an inline style on <\(e.name)>") }
            for (name, _) in e.attributes where name.hasPrefix("on") { out.append("an inline handler \(name) on <\(e.name)>") }
        }
        return out
    }

    static func isExternal(_ url: String) -> Bool {
        let u = url.trimmingCharacters(in: .whitespaces).lowercased()
        return u.hasPrefix("//") || u.contains("://") || u.hasPrefix("javascript:") || u.hasPrefix("data:")
    }

    public func elements(named name: String) -> [Element] { elements.filter { $0.name == name } }

    final class Collector: NSObject, XMLParserDelegate {
        var elements: [Element] = []
        var labelDepth = 0
        var text = ""
        var open: [String] = []
        var error: String?

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            elements.append(Element(name: name.lowercased(), attributes: attributes, insideLabel: labelDepth > 0))
            open.append(name)
            if name == "label" { labelDepth += 1 }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "label" { labelDepth -= 1 }
            if open.last == name { open.removeLast() }
            else if error == nil { error = "</\(name)> closes <\(open.last ?? "nothing")>" }
        }

        func parser(_ parser: XMLParser, parseErrorOccurred parseError: any Error) {
            if error == nil { error = "\(parseError)" }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
    }
}
