import Foundation
import SyncCore

/// The config of an `http-json` source (docs/api.md, "Sources"), parsed and validated.
public struct HTTPJSONConfig: Sendable, Equatable {
    public enum Pagination: Sendable, Equatable {
        case none
        /// A (possibly relative) URL at `path`; null, missing or empty ends.
        case nextURL(path: JSONPointer)
        /// RFC 8288 `Link: <…>; rel="next"`.
        case linkHeader
        /// Send `param` with the value read at `path`; empty ends.
        case cursor(param: String, path: JSONPointer)
        /// `param` = page number from `start`, with `sizeParam` = `size`; an empty page ends.
        case page(param: String, sizeParam: String?, size: Int?, start: Int)
        /// `param` = records so far, `limitParam` = `limit`; an empty page ends.
        case offset(param: String, limitParam: String?, limit: Int?)
    }

    public struct Incremental: Sendable, Equatable {
        public var cursorField: String
        public var param: String
        /// The upstream returns records in ascending cursor order, so the saved cursor may
        /// move with every page instead of only when the sync completes.
        public var sorted: Bool = false
    }

    /// Which redirects carry the configured headers (see ``UpstreamClient``).
    public enum FollowRedirects: String, Sendable, Equatable, CaseIterable {
        case sameOrigin = "same-origin"
        case any
        case none
    }

    public var url: URL
    public var query: [(String, String)]
    public var headers: [(String, String)]
    public var recordsPath: JSONPointer
    public var primaryKey: [String]
    public var pagination: Pagination
    public var incremental: Incremental?
    public var timeoutSeconds: Double
    public var maxRequestRetries: Int
    /// First delay of the in-attempt request retries (doubling, full jitter, capped at 30 s).
    public var requestBackoffSeconds: Double
    public var maxRecordBytes: Int
    public var maxPageBytes: Int
    public var followRedirects: FollowRedirects = .sameOrigin

    public static func == (a: HTTPJSONConfig, b: HTTPJSONConfig) -> Bool {
        a.url == b.url && a.query.elementsEqual(b.query, by: ==) && a.headers.elementsEqual(b.headers, by: ==)
            && a.recordsPath == b.recordsPath && a.primaryKey == b.primaryKey && a.pagination == b.pagination
            && a.incremental == b.incremental && a.timeoutSeconds == b.timeoutSeconds && a.maxRequestRetries == b.maxRequestRetries
            && a.requestBackoffSeconds == b.requestBackoffSeconds && a.maxRecordBytes == b.maxRecordBytes && a.maxPageBytes == b.maxPageBytes
            && a.followRedirects == b.followRedirects
    }

    static let knownKeys: Set<String> = [
        "url", "query", "headers", "records_path", "primary_key", "pagination", "incremental", "timeout_seconds",
        "max_request_retries", "request_backoff_seconds", "max_record_bytes", "max_page_bytes", "follow_redirects",
    ]

    /// Parses `config`, collecting every problem as a field error under `config.`.
    public static func parse(_ config: JSONObject) -> Result<HTTPJSONConfig, FieldErrors> {
        var errors: [FieldError] = []
        func err(_ field: String, _ message: String) { errors.append(FieldError("config.\(field)", message)) }
        for key in config.keys where !knownKeys.contains(key) { err(key, "unknown field") }

        var url = URL(string: "http://invalid")!
        if let raw = config["url"]?.stringValue, let parsed = HTTPURL.parse(raw) {
            url = parsed
        } else {
            err("url", "must be an absolute http or https URL (a port, if any, in 1...65535)")
        }

        func stringPairs(_ key: String) -> [(String, String)] {
            guard let value = config[key] else { return [] }
            guard let object = value.objectValue else { err(key, "must be an object of strings"); return [] }
            var pairs: [(String, String)] = []
            for (k, v) in object.sorted(by: { $0.key < $1.key }) {
                switch v {
                case .string(let s): pairs.append((k, s))
                case .number: pairs.append((k, JSONValue.scalarText(v) ?? ""))
                case .bool(let b): pairs.append((k, b ? "true" : "false"))
                default: err("\(key).\(k)", "must be a string, number or boolean")
                }
            }
            return pairs
        }
        let query = stringPairs("query")
        let headers = stringPairs("headers")
        for (name, value) in headers where !Self.isValidHeader(name: name, value: value) {
            err("headers.\(name)", "is not a valid HTTP header")
        }

        func pointer(_ value: JSONValue?, _ field: String, default def: String? = nil) -> JSONPointer? {
            guard let value else {
                if let def { return JSONPointer(def) }
                err(field, "is required")
                return nil
            }
            guard let s = value.stringValue, let p = JSONPointer(s) else {
                err(field, "must be an RFC 6901 JSON pointer such as \"/rows\" (or \"\" for the whole body)")
                return nil
            }
            return p
        }
        let recordsPath = pointer(config["records_path"], "records_path", default: "") ?? JSONPointer("")!

        var primaryKey: [String] = []
        switch config["primary_key"] {
        case .string(let s)? where !s.isEmpty: primaryKey = [s]
        case .array(let a)? where !a.isEmpty && a.count <= 16 && a.allSatisfy({ ($0.stringValue ?? "").isEmpty == false }):
            primaryKey = a.compactMap(\.stringValue)
        case nil: err("primary_key", "is required: a field name or a list of field names")
        default: err("primary_key", "must be a field name or a non-empty list of field names")
        }

        var pagination = Pagination.none
        if let p = config["pagination"] {
            if let o = p.objectValue {
                func str(_ key: String, required: Bool) -> String? {
                    guard let v = o[key] else {
                        if required { err("pagination.\(key)", "is required") }
                        return nil
                    }
                    guard let s = v.stringValue, !s.isEmpty else { err("pagination.\(key)", "must be a non-empty string"); return nil }
                    return s
                }
                func int(_ key: String, _ range: ClosedRange<Int>) -> Int? {
                    guard let v = o[key] else { return nil }
                    guard let i = v.intValue, range.contains(i) else {
                        err("pagination.\(key)", "must be an integer between \(range.lowerBound) and \(range.upperBound)")
                        return nil
                    }
                    return i
                }
                let allowed: [String: Set<String>] = [
                    "none": [], "next_url": ["path"], "link_header": [], "cursor": ["param", "path"],
                    "page": ["param", "size_param", "size", "start"], "offset": ["param", "limit_param", "limit"],
                ]
                let type = o["type"]?.stringValue ?? ""
                if let keys = allowed[type] {
                    for key in o.keys where key != "type" && !keys.contains(key) { err("pagination.\(key)", "is not used by pagination type \(type)") }
                } else {
                    err("pagination.type", "must be one of: none, next_url, link_header, cursor, page, offset")
                }
                switch type {
                case "next_url": if let path = pointer(o["path"], "pagination.path") { pagination = .nextURL(path: path) }
                case "link_header": pagination = .linkHeader
                case "cursor":
                    let param = str("param", required: true)
                    if let path = pointer(o["path"], "pagination.path"), let param { pagination = .cursor(param: param, path: path) }
                case "page":
                    pagination = .page(param: str("param", required: false) ?? "page", sizeParam: str("size_param", required: false),
                                       size: int("size", 1...100_000), start: int("start", 0...1_000_000) ?? 1)
                case "offset":
                    pagination = .offset(param: str("param", required: false) ?? "offset", limitParam: str("limit_param", required: false),
                                         limit: int("limit", 1...100_000))
                default: break
                }
            } else {
                err("pagination", "must be an object with a type")
            }
        }

        var incremental: Incremental?
        if let inc = config["incremental"], !inc.isNull {
            if let o = inc.objectValue {
                let field = o["cursor_field"]?.stringValue ?? ""
                let param = o["param"]?.stringValue ?? ""
                if field.isEmpty { err("incremental.cursor_field", "is required") }
                if param.isEmpty { err("incremental.param", "is required") }
                var sorted = false
                if let value = o["sorted"] {
                    if let b = value.boolValue { sorted = b } else { err("incremental.sorted", "must be true or false") }
                }
                for key in o.keys where !["cursor_field", "param", "sorted"].contains(key) { err("incremental.\(key)", "unknown field") }
                incremental = Incremental(cursorField: field, param: param, sorted: sorted)
            } else {
                err("incremental", "must be an object with cursor_field and param")
            }
        }

        func number(_ key: String, _ range: ClosedRange<Double>, _ def: Double) -> Double {
            guard let v = config[key] else { return def }
            guard let d = v.doubleValue, range.contains(d) else {
                err(key, "must be a number between \(range.lowerBound) and \(range.upperBound)")
                return def
            }
            return d
        }
        /// A whole number in `range` (a fraction such as `100000.5` is refused, not truncated).
        func integer(_ key: String, _ range: ClosedRange<Int>, _ def: Int) -> Int {
            guard let v = config[key] else { return def }
            guard let d = v.doubleValue, let i = Int(exactly: d), range.contains(i) else {
                err(key, "must be an integer between \(range.lowerBound) and \(range.upperBound)")
                return def
            }
            return i
        }
        let timeout = number("timeout_seconds", 0.1...600, 30)
        let retries = integer("max_request_retries", 0...20, 5)
        let backoff = number("request_backoff_seconds", 0...60, 0.5)
        let maxRecord = integer("max_record_bytes", 64...67_108_864, 1_048_576)
        let maxPage = integer("max_page_bytes", 1024...1_073_741_824, 67_108_864)

        var followRedirects = FollowRedirects.sameOrigin
        if let value = config["follow_redirects"] {
            if let parsed = value.stringValue.flatMap(FollowRedirects.init(rawValue:)) {
                followRedirects = parsed
            } else {
                err("follow_redirects", "must be one of: same-origin, any, none")
            }
        }

        guard errors.isEmpty else { return .failure(FieldErrors(errors: errors)) }
        var parsed = HTTPJSONConfig(
            url: url, query: query, headers: headers, recordsPath: recordsPath, primaryKey: primaryKey,
            pagination: pagination, incremental: incremental, timeoutSeconds: timeout, maxRequestRetries: retries,
            requestBackoffSeconds: backoff, maxRecordBytes: maxRecord, maxPageBytes: maxPage)
        parsed.followRedirects = followRedirects
        return .success(parsed)
    }

    /// A fingerprint of what decides which pages a sync reads and how they become records
    /// (not of headers or timeouts): a checkpoint written under another fingerprint is not
    /// continued (see ``HTTPJSONSource``).
    public var readFingerprint: String {
        var text = url.absoluteString
        for (k, v) in query { text += "\u{0}q\u{0}\(k)\u{0}\(v)" }
        text += "\u{0}r\u{0}\(recordsPath.description)\u{0}k\u{0}\(primaryKey.joined(separator: "\u{0}"))"
        text += "\u{0}p\u{0}\(pagination)"
        if let incremental { text += "\u{0}i\u{0}\(incremental.cursorField)\u{0}\(incremental.param)" }
        let hash = UInt64(bitPattern: ContentHash.of(Array(text.utf8)))
        return String(hash, radix: 16)
    }

    static func isValidHeader(name: String, value: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
            && !value.utf8.contains { $0 == 0x0A || $0 == 0x0D || $0 == 0 }
    }
}

/// A list of field errors as one error value.
public struct FieldErrors: Error, Sendable {
    public var errors: [FieldError]
}

extension JSONValue {
    /// The text of a scalar as a query parameter: strings as is, numbers in their canonical
    /// digits (`1000`, never `1e+3` or `1000.0`).
    public static func scalarText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let s): s
        case .number: value.exactNumber?.canonical
        case .bool(let b): b ? "true" : "false"
        default: nil
        }
    }
}
