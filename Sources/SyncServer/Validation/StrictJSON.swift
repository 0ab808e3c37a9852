import SyncConnectors
import SyncCore

/// Request bodies read by RFC 8259, with what a lenient decoder lets through refused: a
/// member named twice in one object (clients and proxies disagree on which one wins, so
/// neither does), a number no 64-bit float holds (`1e400`: valid JSON, out of range, named
/// by its field), text that is not UTF-8 or holds a lone surrogate escape, U+0000 in a
/// string or a member name (valid JSON, but PostgreSQL's text and `jsonb` cannot hold it, so
/// a stored one broke every statement that touched it; named by its field), and nesting past
/// ``maxDepth``.
enum StrictJSON {
    enum Failure: Error, Equatable {
        /// Not JSON: the byte offset and why.
        case syntax(offset: Int, reason: String)
        /// A member named twice in one object (`path` of the object's member).
        case duplicate(path: String)
        /// A number past the range of a 64-bit float, at `path`.
        case outOfRange(path: String)
        /// U+0000 in the string at `path` (or in that member's name).
        case nul(path: String)
    }

    static let maxDepth = 64

    static func parse(_ bytes: [UInt8]) throws(Failure) -> JSONValue {
        var parser = Parser(bytes: bytes)
        parser.skipSpace()
        let value = try parser.value(path: "", depth: 0)
        parser.skipSpace()
        guard parser.index == bytes.count else { throw parser.syntax("text after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        func syntax(_ reason: String) -> Failure { .syntax(offset: index, reason: reason) }
        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let b = peek, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { index += 1 }
        }

        static func member(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        mutating func value(path: String, depth: Int) throws(Failure) -> JSONValue {
            guard depth < StrictJSON.maxDepth else { throw syntax("nested deeper than \(StrictJSON.maxDepth) levels") }
            switch peek {
            case UInt8(ascii: "{")?:
                index += 1
                var object: [String: JSONValue] = [:]
                skipSpace()
                if peek == UInt8(ascii: "}") { index += 1; return .object(object) }
                while true {
                    skipSpace()
                    guard peek == UInt8(ascii: "\"") else { throw syntax("a member name (a string) was expected") }
                    let key = try string()
                    skipSpace()
                    guard peek == UInt8(ascii: ":") else { throw syntax("':' was expected after a member name") }
                    index += 1
                    skipSpace()
                    let memberPath = Self.member(path, key)
                    guard !key.utf8.contains(0) else { throw .nul(path: memberPath) }
                    let member = try value(path: memberPath, depth: depth + 1)
                    guard object.updateValue(member, forKey: key) == nil else { throw .duplicate(path: memberPath) }
                    skipSpace()
                    switch peek {
                    case UInt8(ascii: ",")?: index += 1
                    case UInt8(ascii: "}")?: index += 1; return .object(object)
                    default: throw syntax("',' or '}' was expected in an object")
                    }
                }
            case UInt8(ascii: "[")?:
                index += 1
                var array: [JSONValue] = []
                skipSpace()
                if peek == UInt8(ascii: "]") { index += 1; return .array(array) }
                while true {
                    skipSpace()
                    array.append(try value(path: "\(path)[\(array.count)]", depth: depth + 1))
                    skipSpace()
                    switch peek {
                    case UInt8(ascii: ",")?: index += 1
                    case UInt8(ascii: "]")?: index += 1; return .array(array)
                    default: throw syntax("',' or ']' was expected in an array")
                    }
                }
            case UInt8(ascii: "\"")?:
                let text = try string()
                guard !text.utf8.contains(0) else { throw .nul(path: path) }
                return .string(text)
            case UInt8(ascii: "t")?: try literal("true"); return .bool(true)
            case UInt8(ascii: "f")?: try literal("false"); return .bool(false)
            case UInt8(ascii: "n")?: try literal("null"); return .null
            case let b? where b == UInt8(ascii: "-") || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")):
                return .number(try number(path: path))
            case nil:
                throw syntax("the body ends where a value was expected")
            default:
                throw syntax("a JSON value was expected")
            }
        }

        mutating func literal(_ word: StaticString) throws(Failure) {
            let text = word.withUTF8Buffer { Array($0) }
            guard bytes.count - index >= text.count, Array(bytes[index..<index + text.count]) == text else {
                throw syntax("a JSON value was expected")
            }
            index += text.count
        }

        mutating func number(path: String) throws(Failure) -> Double {
            let start = index
            func digits() -> Int {
                let from = index
                while let b = peek, b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") { index += 1 }
                return index - from
            }
            if peek == UInt8(ascii: "-") { index += 1 }
            let whole = index
            guard digits() > 0 else { throw syntax("a digit was expected") }
            if bytes[whole] == UInt8(ascii: "0") && index - whole > 1 { throw .syntax(offset: whole, reason: "a number may not start with 0") }
            if peek == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw syntax("a digit was expected after '.'") }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                index += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw syntax("a digit was expected in the exponent") }
            }
            guard let value = Double(String(decoding: bytes[start..<index], as: UTF8.self)), value.isFinite else {
                throw .outOfRange(path: path)
            }
            // Too small for a float: a nonzero number that reads as zero (`1e-400`, which an
            // integer field took as 0) is out of range too.
            if value == 0 {
                let mantissaEnd = bytes[whole..<index].firstIndex(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) ?? index
                if bytes[whole..<mantissaEnd].contains(where: { $0 >= UInt8(ascii: "1") && $0 <= UInt8(ascii: "9") }) {
                    throw .outOfRange(path: path)
                }
            }
            return value
        }

        /// A string at `index` (its opening quote), escapes resolved; UTF-8 checked.
        mutating func string() throws(Failure) -> String {
            index += 1
            let start = index
            // Find the end, checking the grammar: escapes, and no raw control characters.
            while true {
                guard let b = peek else { throw syntax("a string is not closed") }
                if b == UInt8(ascii: "\"") { break }
                if b < 0x20 { throw syntax("a control character in a string must be escaped") }
                index += 1
                guard b == UInt8(ascii: "\\") else { continue }
                switch peek {
                case UInt8(ascii: "\"")?, UInt8(ascii: "\\")?, UInt8(ascii: "/")?, UInt8(ascii: "b")?, UInt8(ascii: "f")?,
                     UInt8(ascii: "n")?, UInt8(ascii: "r")?, UInt8(ascii: "t")?:
                    index += 1
                case UInt8(ascii: "u")?:
                    index += 1
                    guard bytes.count - index >= 4, bytes[index..<index + 4].allSatisfy({ JSONScanner.hexValue($0) != nil }) else {
                        throw syntax("an invalid \\u escape")
                    }
                    index += 4
                default:
                    throw syntax("an invalid escape")
                }
            }
            let raw = bytes[start..<index]
            index += 1
            // A body that is not UTF-8 is refused, never repaired; a lone surrogate escape
            // names no character (the strict decoding refuses it).
            guard String(validating: raw, as: UTF8.self) != nil else { throw syntax("a string is not UTF-8") }
            guard let text = raw.withUnsafeBufferPointer({ JSONScanner.unescape($0, strict: true) }) else {
                throw syntax("a lone UTF-16 surrogate escape")
            }
            return text
        }
    }
}
