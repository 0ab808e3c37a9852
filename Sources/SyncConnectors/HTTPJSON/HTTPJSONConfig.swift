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
        /// Send the value read at `path` (or at `fromLastRecord` in the page's last record) as
        /// `param` (and `{cursor}`); none, or empty, ends.
        case cursor(param: String?, path: JSONPointer?, fromLastRecord: JSONPointer?)
        /// `param` = page number from `start`, with `sizeParam` = `size`; an empty page ends.
        case page(param: String?, sizeParam: String?, size: Int?, start: Int)
        /// `param` = records so far, `limitParam` = `limit`; an empty page ends.
        case offset(param: String?, limitParam: String?, limit: Int?)

        var typeName: String {
            switch self {
            case .none: "none"
            case .nextURL: "next_url"
            case .linkHeader: "link_header"
            case .cursor: "cursor"
            case .page: "page"
            case .offset: "offset"
            }
        }
    }

    /// When a sync has read its last page, whatever the pagination style says (each is
    /// checked after every page; the first that holds ends the sync).
    public struct Stop: Sendable, Equatable {
        public struct Match: Sendable, Equatable {
            public var path: JSONPointer
            /// A JSON scalar: equal by type and value (numbers exactly, strings by bytes).
            public var equals: JSONValue
        }
        /// The value at `path` equals `equals` (`/has_more` false, `/done` true).
        public var when: [Match] = []
        /// A page without records.
        public var onEmptyPage = false
        /// The records read in the sync reach the count at this path.
        public var totalPath: JSONPointer?
        /// The sync has read this many pages.
        public var maxPages: Int?
    }

    public struct Incremental: Sendable, Equatable {
        public var cursorField: String
        /// The query parameter the cursor goes in; `nil` when only `{since}` places it.
        public var param: String?
        /// The upstream returns records in ascending cursor order, so the saved cursor may
        /// move with every page instead of only when the sync completes.
        public var sorted: Bool = false
        /// How the cursor is sent; set, the cursor is a time (records' values must name one).
        public var format: CursorFormat?
        /// Sent this much earlier than the saved cursor (late-arriving updates).
        public var lookbackSeconds: Int = 0
        /// The parameter that closes the range at the sync's start time (`{until}` too).
        public var endParam: String?
        /// What is sent when there is no saved cursor (a first sync, a full sync).
        public var start: JSONValue?
    }

    /// A child stream: one read per record of another source (docs/sources.md, "Parent and child").
    public struct Partitions: Sendable, Equatable {
        public struct Value: Sendable, Equatable {
            /// The placeholder name (`{account_id}`).
            public var name: String
            /// Where the parent record holds it.
            public var path: JSONPointer
        }
        /// The parent source's name or id.
        public var fromSource: String
        /// Sorted by name.
        public var values: [Value]
        /// Record keys are the partition's values joined to the child's key, so children of two
        /// parents never share a key; `false` keeps the child's own keys (unique upstream-wide).
        public var scopeKeys = true
    }

    public enum Format: String, Sendable, Equatable {
        case json
        /// JSON Lines (NDJSON): one record per line.
        case jsonl
    }

    /// Which redirects carry the configured headers (see ``UpstreamClient``).
    public enum FollowRedirects: String, Sendable, Equatable, CaseIterable {
        case sameOrigin = "same-origin"
        case any
        case none
    }

    /// The URL with `{placeholders}` percent-encoded (`%7Bname%7D`): its origin is the
    /// source's, and ``RequestTemplate`` fills it per request.
    public var url: URL
    public var query: [(String, String)]
    public var headers: [(String, String)]
    public var recordsPath: JSONPointer
    /// `records_path` ended in `/*`: the records are the values of the object (or the
    /// elements of the array) at `recordsPath`.
    public var recordsEach = false
    public var primaryKey: [String]
    public var pagination: Pagination
    public var stop = Stop()
    public var incremental: Incremental?
    public var timeoutSeconds: Double
    public var maxRequestRetries: Int
    /// First delay of the in-attempt request retries (doubling, full jitter, capped at 30 s).
    public var requestBackoffSeconds: Double
    public var maxRecordBytes: Int
    public var maxPageBytes: Int
    public var followRedirects: FollowRedirects = .sameOrigin
    /// `POST` sends `body` (JSON) with every page request.
    public var post = false
    public var body: JSONValue?
    public var format = Format.json
    /// Only these top-level fields of each record are kept (`nil`: all).
    public var fields: [String]?
    public var partitions: Partitions?

    public static func == (a: HTTPJSONConfig, b: HTTPJSONConfig) -> Bool {
        a.url == b.url && a.query.elementsEqual(b.query, by: ==) && a.headers.elementsEqual(b.headers, by: ==)
            && a.recordsPath == b.recordsPath && a.recordsEach == b.recordsEach && a.primaryKey == b.primaryKey
            && a.pagination == b.pagination && a.stop == b.stop
            && a.incremental == b.incremental && a.timeoutSeconds == b.timeoutSeconds && a.maxRequestRetries == b.maxRequestRetries
            && a.requestBackoffSeconds == b.requestBackoffSeconds && a.maxRecordBytes == b.maxRecordBytes && a.maxPageBytes == b.maxPageBytes
            && a.followRedirects == b.followRedirects && a.post == b.post && a.body == b.body && a.format == b.format && a.fields == b.fields
            && a.partitions == b.partitions
    }

    static let knownKeys: Set<String> = [
        "url", "query", "headers", "records_path", "primary_key", "pagination", "incremental", "timeout_seconds",
        "max_request_retries", "request_backoff_seconds", "max_record_bytes", "max_page_bytes", "follow_redirects",
        "method", "body", "format", "fields", "partitions",
    ]

    /// The placeholder names this config's requests can fill.
    var placeholderNames: Set<String> { Set(RequestTemplate.syncNames + (partitions?.values.map(\.name) ?? [])) }

    /// Whether `{name}` is written in the URL, a query value or the body.
    func usesPlaceholder(_ name: String) -> Bool {
        let known: Set<String> = [name]
        return url.absoluteString.contains("%7B\(name)%7D")
            || query.contains { !RequestTemplate.names(in: $0.1, known: known).isEmpty }
            || (body.map { !RequestTemplate.bodyNames($0, known: known).isEmpty } ?? false)
    }

    /// Parses `config`, collecting every problem as a field error under `config.`.
    public static func parse(_ config: JSONObject) -> Result<HTTPJSONConfig, FieldErrors> {
        var errors: [FieldError] = []
        func err(_ field: String, _ message: String) { errors.append(FieldError("config.\(field)", message)) }
        for key in config.keys where !knownKeys.contains(key) { err(key, "unknown field") }
        var partitions: Partitions?
        if let value = config["partitions"], !value.isNull {
            partitions = parsePartitions(value, err: err)
        }
        let known = Set(RequestTemplate.syncNames + (partitions?.values.map(\.name) ?? []))

        var url = URL(string: "http://invalid")!
        if let raw = config["url"]?.stringValue, let parsed = Self.parseURLTemplate(raw, known: known) {
            url = parsed
        } else if let raw = config["url"]?.stringValue, raw.contains("{") {
            err("url", "must be an absolute http or https URL; placeholders ({name}) only in its path and query, with known names")
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
        var recordsEach = false
        var recordsPath = JSONPointer("")!
        if let raw = config["records_path"]?.stringValue, raw == "/*" || raw.hasSuffix("/*") {
            recordsEach = true
            recordsPath = pointer(.string(String(raw.dropLast(2))), "records_path") ?? recordsPath
        } else {
            recordsPath = pointer(config["records_path"], "records_path", default: "") ?? recordsPath
        }

        var primaryKey: [String] = []
        switch config["primary_key"] {
        case .string(let s)? where !s.isEmpty: primaryKey = [s]
        case .array(let a)? where !a.isEmpty && a.count <= 16 && a.allSatisfy({ ($0.stringValue ?? "").isEmpty == false }):
            primaryKey = a.compactMap(\.stringValue)
        case nil: err("primary_key", "is required: a field name or a list of field names")
        default: err("primary_key", "must be a field name or a non-empty list of field names")
        }

        // Method, body, format, fields.
        var post = false
        switch config["method"] {
        case nil, .string("GET")?: break
        case .string("POST")?: post = true
        default: err("method", "must be GET or POST")
        }
        let body = config["body"]
        if body != nil, !post { err("body", "is sent only with method POST") }
        if let body, body.objectValue == nil, body.arrayValue == nil { err("body", "must be a JSON object or array") }
        var format = Format.json
        if let value = config["format"] {
            if let parsed = value.stringValue.flatMap(Format.init(rawValue:)) { format = parsed } else { err("format", "must be json or jsonl") }
        }
        var fields: [String]?
        if let value = config["fields"] {
            if let items = value.arrayValue, !items.isEmpty, items.count <= 1000, items.allSatisfy({ !($0.stringValue ?? "").isEmpty }) {
                fields = items.compactMap(\.stringValue)
            } else {
                err("fields", "must be a non-empty list of field names (at most 1000)")
            }
        }
        if format == .jsonl, config["records_path"] != nil { err("records_path", "is not used with format jsonl (every line is a record)") }

        // Where each placeholder is written, to check that every value the sync computes has a place.
        var used: Set<String> = []
        // Placeholders inside other text, with the field they are in.
        var embeddedIn: [String: String] = [:]
        if let raw = config["url"]?.stringValue {
            for name in RequestTemplate.names(in: raw, known: known) { embeddedIn[name] = embeddedIn[name] ?? "url" }
            // A percent-encoded brace is how a placeholder is kept inside the parsed URL: written
            // literally, it would be taken for one at request time.
            let lowered = raw.lowercased()
            if known.contains(where: { lowered.contains("%7b\($0)%7d") }) {
                err("url", "holds a percent-encoded placeholder (%7Bname%7D); write {name}, or encode the braces another way")
            }
        }
        for (name, value) in query {
            if let whole = RequestTemplate.whole(value, known: known) { used.insert(whole) } else {
                for placeholder in RequestTemplate.names(in: value, known: known) { embeddedIn[placeholder] = embeddedIn[placeholder] ?? "query.\(name)" }
            }
        }
        let embedded = Set(embeddedIn.keys)
        if let body { used.formUnion(RequestTemplate.bodyNames(body, known: known)) }
        used.formUnion(embedded)
        for value in partitions?.values ?? [] where !used.contains(value.name) {
            err("partitions.values.\(value.name)", "is not used: place {\(value.name)} in the URL, query or body")
        }

        var pagination = Pagination.none
        var stop = Stop()
        if let p = config["pagination"] {
            if let o = p.objectValue {
                (pagination, stop) = parsePagination(o, used: used, format: format, pointer: pointer, err: err)
            } else {
                err("pagination", "must be an object with a type")
            }
        }

        var incremental: Incremental?
        if let inc = config["incremental"], !inc.isNull {
            if let o = inc.objectValue {
                incremental = parseIncremental(o, used: used, err: err)
            } else {
                err("incremental", "must be an object with cursor_field and param")
            }
        }
        // A placeholder inside other text must always have a value.
        if embedded.contains("cursor") || embedded.contains("page") || embedded.contains("offset") {
            for name in ["cursor", "page", "offset"] where embedded.contains(name) {
                let has = switch (name, pagination) {
                case ("page", .page), ("offset", .offset): true
                default: false
                }
                if !has { err(embeddedIn[name] ?? "url", "{\(name)} may stand inside other text only where it always has a value (a cursor does not on the first page); use it as a whole query value or body member") }
            }
        }
        if embedded.contains("since"), incremental?.start == nil {
            err("incremental.start", "is required when {since} stands inside other text (the first sync has no saved cursor)")
        }
        if used.contains("until"), incremental?.format == nil { err("incremental.cursor_format", "is required for {until}") }
        for name in used where name == "since" || name == "until" {
            if incremental == nil { err("incremental", "is required for {\(name)}") }
        }
        for name in used where name == "cursor" || name == "page" || name == "offset" {
            let matches = switch (name, pagination) {
            case ("cursor", .cursor), ("page", .page), ("offset", .offset): true
            default: false
            }
            if !matches { err("pagination", "{\(name)} is used, but pagination type \(pagination.typeName) has no \(name)") }
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
        parsed.recordsEach = recordsEach
        parsed.stop = stop
        parsed.post = post
        parsed.body = body
        parsed.format = format
        parsed.fields = fields
        parsed.partitions = partitions
        return .success(parsed)
    }

    /// `raw` as a URL whose `{placeholders}` (known names, in the path and query only) are
    /// percent-encoded braces.
    static func parseURLTemplate(_ raw: String, known: Set<String>) -> URL? {
        let names = RequestTemplate.names(in: raw, known: known)
        guard raw.contains("{") else { return HTTPURL.parse(raw) }
        // Every brace must be a known placeholder, after the authority.
        guard let schemeEnd = raw.range(of: "://") else { return nil }
        let afterScheme = raw[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
        guard !afterScheme[..<authorityEnd].contains("{") else { return nil }
        var text = raw
        for name in Set(names) { text = text.replacingOccurrences(of: "{\(name)}", with: "%7B\(name)%7D") }
        guard !text.contains("{"), !text.contains("}") else { return nil }
        return HTTPURL.parse(text)
    }

    private static func parsePagination(
        _ o: JSONObject, used: Set<String>, format: Format,
        pointer: (JSONValue?, String, String?) -> JSONPointer?, err: (String, String) -> Void
    ) -> (Pagination, Stop) {
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
        let stopKeys: Set<String> = ["stop_when", "stop_on_empty_page", "total_path", "max_pages"]
        let allowed: [String: Set<String>] = [
            "none": [], "next_url": ["path"], "link_header": [], "cursor": ["param", "path", "from_last_record"],
            "page": ["param", "size_param", "size", "start"], "offset": ["param", "limit_param", "limit"],
        ]
        let type = o["type"]?.stringValue ?? ""
        if let keys = allowed[type] {
            for key in o.keys where key != "type" && !keys.contains(key) && (type == "none" || !stopKeys.contains(key)) {
                err("pagination.\(key)", "is not used by pagination type \(type)")
            }
        } else {
            err("pagination.type", "must be one of: none, next_url, link_header, cursor, page, offset")
        }
        var pagination = Pagination.none
        switch type {
        case "next_url":
            if format == .jsonl { err("pagination.type", "next_url reads a field of a JSON document; with format jsonl use link_header, cursor with from_last_record, page or offset") }
            if let path = pointer(o["path"], "pagination.path", nil) { pagination = .nextURL(path: path) }
        case "link_header": pagination = .linkHeader
        case "cursor":
            let param = str("param", required: false)
            if param == nil, !used.contains("cursor") { err("pagination.param", "is required (or place {cursor} in the query or body)") }
            switch (o["path"], o["from_last_record"]) {
            case (nil, nil): err("pagination.path", "is required: where the page names the next cursor (or from_last_record)")
            case (_?, _?): err("pagination.from_last_record", "and path are alternatives: give one")
            case (let path?, nil):
                if format == .jsonl { err("pagination.path", "reads a field of a JSON document; with format jsonl use from_last_record") }
                if let p = pointer(path, "pagination.path", nil) { pagination = .cursor(param: param, path: p, fromLastRecord: nil) }
            case (nil, let last?):
                if let p = pointer(last, "pagination.from_last_record", nil) { pagination = .cursor(param: param, path: nil, fromLastRecord: p) }
            }
        case "page":
            let param = str("param", required: false) ?? (used.contains("page") ? nil : "page")
            pagination = .page(param: param, sizeParam: str("size_param", required: false),
                               size: int("size", 1...100_000), start: int("start", 0...1_000_000) ?? 1)
        case "offset":
            let param = str("param", required: false) ?? (used.contains("offset") ? nil : "offset")
            pagination = .offset(param: param, limitParam: str("limit_param", required: false), limit: int("limit", 1...100_000))
        default: break
        }

        var stop = Stop()
        if let value = o["stop_when"] {
            let items = value.arrayValue ?? [value]
            if items.isEmpty || items.count > 16 { err("pagination.stop_when", "must be a condition or a list of 1 to 16 conditions") }
            for (i, item) in items.enumerated() {
                let field = value.arrayValue == nil ? "pagination.stop_when" : "pagination.stop_when[\(i)]"
                guard let c = item.objectValue, Set(c.keys) == ["path", "equals"] else {
                    err(field, "must be {\"path\": \"/has_more\", \"equals\": false}")
                    continue
                }
                guard let equals = c["equals"], equals.objectValue == nil, equals.arrayValue == nil else {
                    err("\(field).equals", "must be a string, number, boolean or null")
                    continue
                }
                if let path = pointer(c["path"], "\(field).path", nil) { stop.when.append(.init(path: path, equals: equals)) }
            }
        }
        if let value = o["stop_on_empty_page"] {
            if let b = value.boolValue { stop.onEmptyPage = b } else { err("pagination.stop_on_empty_page", "must be true or false") }
        }
        if let value = o["total_path"] { stop.totalPath = pointer(value, "pagination.total_path", nil) }
        stop.maxPages = int("max_pages", 1...10_000_000)
        if format == .jsonl, !stop.when.isEmpty || stop.totalPath != nil {
            err("pagination.stop_when", "and total_path read fields of a JSON document; with format jsonl use stop_on_empty_page or max_pages")
        }
        return (pagination, stop)
    }

    private static func parsePartitions(_ value: JSONValue, err: (String, String) -> Void) -> Partitions? {
        guard let o = value.objectValue else {
            err("partitions", "must be an object with from_source and values")
            return nil
        }
        for key in o.keys where !["from_source", "values", "scope_keys"].contains(key) { err("partitions.\(key)", "unknown field") }
        let from = o["from_source"]?.stringValue ?? ""
        if from.isEmpty || from.utf8.count > 200 { err("partitions.from_source", "is required: the name or id of the parent source") }
        var values: [Partitions.Value] = []
        if let members = o["values"]?.objectValue, !members.isEmpty, members.count <= 8 {
            for (name, raw) in members.sorted(by: { $0.key < $1.key }) {
                let valid = name.utf8.count <= 64 && name.utf8.first.map { $0 == UInt8(ascii: "_") || ($0 >= 97 && $0 <= 122) } == true
                    && name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
                if !valid || RequestTemplate.syncNames.contains(name) {
                    err("partitions.values.\(name)", "must be a lowercase name (a-z, 0-9, _) other than \(RequestTemplate.syncNames.joined(separator: ", "))")
                    continue
                }
                guard let text = raw.stringValue, let path = JSONPointer(text), !path.tokens.isEmpty else {
                    err("partitions.values.\(name)", "must be a JSON pointer into the parent record, such as \"/id\"")
                    continue
                }
                values.append(.init(name: name, path: path))
            }
        } else {
            err("partitions.values", "must map 1 to 8 placeholder names to JSON pointers into the parent record, such as {\"account_id\": \"/id\"}")
        }
        var scope = true
        if let raw = o["scope_keys"] {
            if let b = raw.boolValue { scope = b } else { err("partitions.scope_keys", "must be true or false") }
        }
        return Partitions(fromSource: from, values: values, scopeKeys: scope)
    }

    private static func parseIncremental(_ o: JSONObject, used: Set<String>, err: (String, String) -> Void) -> Incremental {
        let field = o["cursor_field"]?.stringValue ?? ""
        if field.isEmpty { err("incremental.cursor_field", "is required") }
        var param: String?
        if let value = o["param"] {
            if let s = value.stringValue, !s.isEmpty { param = s } else { err("incremental.param", "must be a non-empty string") }
        } else if !used.contains("since") {
            err("incremental.param", "is required (or place {since} in the URL, query or body)")
        }
        var inc = Incremental(cursorField: field, param: param)
        if let value = o["sorted"] {
            if let b = value.boolValue { inc.sorted = b } else { err("incremental.sorted", "must be true or false") }
        }
        if let value = o["cursor_format"] {
            if let f = value.stringValue.flatMap(CursorFormat.init(rawValue:)) { inc.format = f } else {
                err("incremental.cursor_format", "must be one of: rfc3339, epoch_seconds, epoch_millis")
            }
        }
        if let value = o["lookback_seconds"] {
            if let d = value.doubleValue, let i = Int(exactly: d), (0...31_622_400).contains(i) { inc.lookbackSeconds = i } else {
                err("incremental.lookback_seconds", "must be an integer between 0 and 31622400 (366 days)")
            }
            if inc.format == nil { err("incremental.cursor_format", "is required with lookback_seconds (the cursor must be a time)") }
        }
        if let value = o["end_param"] {
            if let s = value.stringValue, !s.isEmpty { inc.endParam = s } else { err("incremental.end_param", "must be a non-empty string") }
            if inc.format == nil { err("incremental.cursor_format", "is required with end_param (the sync's start time is sent in it)") }
        }
        if let value = o["start"] {
            switch value {
            case .string(let s) where !s.isEmpty && s.utf8.count <= 200 && !s.utf8.contains(0): inc.start = value
            case .number where value.exactNumber != nil: inc.start = value
            default: err("incremental.start", "must be a non-empty string or a number")
            }
            if let start = inc.start, inc.format != nil, CursorTime.milliseconds(of: start) == nil {
                err("incremental.start", "must be a time (RFC 3339, or epoch seconds or milliseconds) with cursor_format")
            }
        }
        let keys: Set<String> = ["cursor_field", "param", "sorted", "cursor_format", "lookback_seconds", "end_param", "start"]
        for key in o.keys where !keys.contains(key) { err("incremental.\(key)", "unknown field") }
        return inc
    }

    /// A fingerprint of what decides which pages a sync reads and how they become records
    /// (not of headers or timeouts): a checkpoint written under another fingerprint is not
    /// continued (see ``HTTPJSONSource``).
    public var readFingerprint: String {
        var text = url.absoluteString
        for (k, v) in query { text += "\u{0}q\u{0}\(k)\u{0}\(v)" }
        text += "\u{0}r\u{0}\(recordsPath.description)\u{0}k\u{0}\(primaryKey.joined(separator: "\u{0}"))"
        text += "\u{0}p\u{0}\(pagination)\u{0}s\u{0}\(stop)\u{0}e\u{0}\(recordsEach)\u{0}m\u{0}\(post)\u{0}\(body.map { String(decoding: JSONWriter.bytes($0), as: UTF8.self) } ?? "")"
        text += "\u{0}f\u{0}\(format)\u{0}\(fields ?? [])\u{0}\(partitions.map { "\($0)" } ?? "")"
        if let incremental { text += "\u{0}i\u{0}\(incremental)" }
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
