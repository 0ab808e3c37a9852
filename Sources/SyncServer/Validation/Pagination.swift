import Foundation
import Hummingbird
import SyncCore

/// Keyset pagination parameters (docs/api.md, "Pagination"): `limit` 1–1000, default 50, and an
/// opaque cursor that only this server issues. Cursors are a kind tag plus a key, base64url
/// encoded; anything else is a 422.
struct PageQuery {
    var limit: Int
    var after: String?

    static func parse(_ request: Request, cursorKind: String, cursorParameter: String = "cursor") throws(Problem) -> PageQuery {
        let query = request.uri.queryParameters
        var limit = 50
        if let raw = query["limit"] {
            guard let l = Int(String(raw)), (1...1000).contains(l) else {
                throw Problem.validation([FieldError("limit", "must be an integer between 1 and 1000")])
            }
            limit = l
        }
        var after: String?
        if let raw = query[Substring(cursorParameter)], !raw.isEmpty {
            guard let key = Cursor.decode(String(raw), kind: cursorKind) else {
                throw Problem.validation([FieldError(cursorParameter, "is not a cursor issued by this server")])
            }
            after = key
        }
        return PageQuery(limit: limit, after: after)
    }

    /// A boolean query parameter (`true`/`1`, `false`/`0`; absent is false).
    static func flag(_ request: Request, _ name: String) throws(Problem) -> Bool {
        switch request.uri.queryParameters[Substring(name)].map(String.init) {
        case nil, "false", "0": return false
        case "true", "1": return true
        default: throw Problem.validation([FieldError(name, "must be true or false")])
        }
    }
}

/// Opaque keyset cursors: base64url of `kind:check:key`, where `check` is a checksum of the
/// kind and key. A cursor this server did not issue (made up, edited, or of another list)
/// fails the checksum and is a 422, instead of silently paging from wherever it points.
/// Not a secret: it tells a mistake from a cursor, it does not authorise anything.
enum Cursor {
    static func encode(_ key: String, kind: String) -> String {
        Data("\(kind):\(check(key, kind: kind)):\(key)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ cursor: String, kind: String) -> String? {
        var b64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        // Taken apart by bytes: a key that starts with a combining mark would join the `:`
        // before it into one `Character`, and the server would refuse its own cursor.
        guard let data = Data(base64Encoded: b64), String(data: data, encoding: .utf8) != nil else { return nil }
        let bytes = [UInt8](data), prefix = Array((kind + ":").utf8), colon = UInt8(ascii: ":")
        guard bytes.starts(with: prefix), let end = bytes[prefix.count...].firstIndex(of: colon) else { return nil }
        let key = String(decoding: bytes[(end + 1)...], as: UTF8.self)
        guard bytes[prefix.count..<end].elementsEqual(check(key, kind: kind).utf8) else { return nil }
        // Only the spelling this server writes: padding or other base64 forms of the same
        // bytes are an edited cursor.
        return encode(key, kind: kind) == cursor ? key : nil
    }

    static func check(_ key: String, kind: String) -> String {
        let hash = UInt64(bitPattern: ContentHash.of(Array("tributary-cursor\u{0}\(kind)\u{0}\(key)".utf8)))
        return String(hash & 0xFFFF_FFFF, radix: 16)
    }
}
