import SyncCore

/// Turns one upstream page (bytes) into records, record errors, the pagination value and
/// the largest incremental cursor, without building an object tree (see ``JSONScanner``).
struct PageParser {
    let config: HTTPJSONConfig
    /// Key parts every record key starts with (a child stream's partition).
    var keyPrefix: [RecordKey.Part] = []
    /// Lines of the JSON Lines answer before this piece (error messages count from the answer's start).
    var firstLine = 0

    init(config: HTTPJSONConfig) { self.config = config }

    struct Parsed {
        var records: [SourceRecord] = []
        var recordErrors: [RecordError] = []
        /// Elements in the records array (records and record errors).
        var elementCount = 0
        /// The string at the pagination path (next URL or cursor), or the value at
        /// `from_last_record` in the page's last record, if any.
        var paginationValue: String?
        /// The largest value of the incremental cursor field on the page.
        var maxCursor: JSONValue?
        /// A `stop_when` condition holds.
        var stopMatched = false
        /// The count at `total_path`.
        var total: Int?
    }

    var paginationPath: JSONPointer? {
        switch config.pagination {
        case .nextURL(let path): path
        case .cursor(_, let path?, _): path
        default: nil
        }
    }

    /// A UTF-8 byte order mark, which RFC 8259 §8.1 lets a parser ignore.
    static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    func parse(_ body: [UInt8], pageNumber: Int, status: Int) throws(SyncError) -> Parsed {
        if body.starts(with: Self.byteOrderMark) {
            return try parse(Array(body.dropFirst(Self.byteOrderMark.count)), pageNumber: pageNumber, status: status)
        }
        return try body.withUnsafeBufferPointer { (buffer) throws(SyncError) -> Parsed in
            var parsed = Parsed()
            let fields = config.primaryKey + (config.incremental.map { [$0.cursorField] } ?? [])
            var lastElement: JSONScanner.Value?
            func each(_ element: JSONScanner.Value, _ members: [JSONScanner.Value?]) {
                lastElement = element
                take(element, members, buffer: buffer, pageNumber: pageNumber, into: &parsed)
            }
            if config.format == .jsonl {
                try Self.forEachLine(of: buffer, firstLine: firstLine, status: status) { line in
                    each(line, line.kind == .object ? JSONScanner.members(of: line, in: buffer, named: fields) : [])
                }
            } else {
                let stops = config.stop.when.map(\.path)
                let pointers = [config.recordsPath] + (paginationPath.map { [$0] } ?? []) + stops + (config.stop.totalPath.map { [$0] } ?? [])
                let located: [JSONScanner.Value?]
                do {
                    located = try JSONScanner.locate(pointers, in: buffer)
                } catch let syntax {
                    throw SyncErrorFactory.invalidResponse("the upstream body is not valid JSON (\(syntax))", status: status)
                }
                var at = 1
                if paginationPath != nil {
                    if let value = located[at] { parsed.paginationValue = try Self.scalarText(value, in: buffer, status: status) }
                    at += 1
                }
                for (i, condition) in config.stop.when.enumerated() where Self.equals(located[at + i], condition.equals, in: buffer) {
                    parsed.stopMatched = true
                }
                at += stops.count
                if config.stop.totalPath != nil, let value = located[at] {
                    guard value.kind == .number, let total = Int(JSONScanner.literal(value, in: buffer)), total >= 0 else {
                        throw SyncErrorFactory.invalidResponse("the count at total_path \"\(config.stop.totalPath!.description)\" is not a whole number", status: status)
                    }
                    parsed.total = total
                }
                guard let container = located[0], container.kind == .array || (config.recordsEach && container.kind == .object) else {
                    throw SyncErrorFactory.invalidResponse(
                        "the upstream body has no \(config.recordsEach ? "object or array" : "array") at records_path \"\(config.recordsPath.description)\(config.recordsEach ? "/*" : "")\"",
                        status: status)
                }
                if container.kind == .array {
                    JSONScanner.forEachElement(of: container, in: buffer, members: fields, each)
                } else {
                    JSONScanner.forEachMember(of: container, in: buffer) { _, value in
                        each(value, value.kind == .object ? JSONScanner.members(of: value, in: buffer, named: fields) : [])
                    }
                }
            }
            if case .cursor(_, _, let fromLast?) = config.pagination, let last = lastElement {
                // The next cursor is the last record's: one without it would end the sync early
                // (and a full sync would then delete what it did not reach).
                let inner = UnsafeBufferPointer(rebasing: buffer[last.range])
                guard let found = (try? JSONScanner.locate([fromLast], in: inner))?.first ?? nil,
                      let text = try Self.scalarText(found, in: inner, status: status) else {
                    throw SyncErrorFactory.invalidResponse("the page's last record has no string or number at from_last_record \"\(fromLast.description)\"", status: status)
                }
                parsed.paginationValue = text
            }
            return parsed
        }
    }

    /// One element of the records: a record, or a record error.
    private func take(_ element: JSONScanner.Value, _ members: [JSONScanner.Value?], buffer: UnsafeBufferPointer<UInt8>,
                      pageNumber: Int, into parsed: inout Parsed) {
        parsed.elementCount += 1
        func recordError(_ key: String?, _ message: String) {
            parsed.recordErrors.append(RecordError(page: pageNumber, recordKey: key, message: message))
        }
        guard element.kind == .object else {
            recordError(nil, "record is a JSON \(element.kind), not an object")
            return
        }
        let keyCount = config.primaryKey.count
        /// A key part, `nil` for a missing or unusable field. A string is decoded
        /// strictly: an escaped lone surrogate (`\ud800`) would become U+FFFD and
        /// share a key with every other one.
        var loneSurrogate = false
        func part(_ i: Int) -> RecordKey.Part? {
            switch members[i]?.kind {
            case .string?:
                guard let text = JSONScanner.string(members[i]!, in: buffer, strict: true) else {
                    loneSurrogate = true
                    return nil
                }
                return .string(text)
            case .number?: return ExactNumber.canonicalText(of: JSONScanner.literal(members[i]!, in: buffer)[...]).map(RecordKey.Part.number)
            default: return nil
            }
        }
        var parts: [RecordKey.Part] = []
        for i in 0..<keyCount {
            guard let p = part(i) else {
                recordError(nil, loneSurrogate
                    ? "the primary key field \"\(config.primaryKey[i])\" holds a lone UTF-16 surrogate escape, which no key can hold"
                    : "record has no usable primary key field \"\(config.primaryKey[i])\" (a string or number is required)")
                return
            }
            parts.append(p)
        }
        let key = RecordKey.encode(keyPrefix + parts)
        if element.range.count > config.maxRecordBytes {
            recordError(key, "record is \(element.range.count) bytes, over max_record_bytes \(config.maxRecordBytes)")
            return
        }
        if let incremental = config.incremental, let value = members[keyCount] {
            let cursor: JSONValue?
            switch value.kind {
            case .string:
                // Saved in the source's state: what no store keeps (U+0000; PostgreSQL's
                // jsonb refuses it) makes the record an error, not every later commit.
                guard let text = JSONScanner.string(value, in: buffer, strict: true), !text.utf8.contains(0) else {
                    recordError(key, "the cursor field \"\(incremental.cursorField)\" holds U+0000 or a lone UTF-16 surrogate escape, which no cursor can hold")
                    return
                }
                cursor = .string(text)
            case .number: cursor = ExactNumber(JSONScanner.literal(value, in: buffer))?.jsonValue
            case .null: cursor = nil
            case .bool, .object, .array:
                recordError(key, "the cursor field \"\(incremental.cursorField)\" is a JSON \(value.kind), not a string or number")
                return
            }
            if let cursor {
                if incremental.format != nil, CursorTime.milliseconds(of: cursor) == nil {
                    recordError(key, "the cursor field \"\(incremental.cursorField)\" holds \(JSONValue.scalarText(cursor)?.prefix(64) ?? ""), which is not a time (RFC 3339, or epoch seconds or milliseconds)")
                    return
                }
                parsed.maxCursor = CursorOrder.max(parsed.maxCursor, cursor, time: incremental.format != nil)
            }
        }
        let data = config.fields.map { Self.project(element, fields: $0, in: buffer) } ?? Array(buffer[element.range])
        parsed.records.append(SourceRecord(key: key, data: data))
    }

    /// The object `element` with only the members named in `fields`, in the record's order.
    static func project(_ element: JSONScanner.Value, fields: [String], in buffer: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        let wanted = Set(fields)
        var out: [UInt8] = [UInt8(ascii: "{")]
        JSONScanner.forEachMember(of: element, in: buffer) { name, value in
            guard let text = JSONScanner.string(name, in: buffer, strict: true), wanted.contains(text) else { return }
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: buffer[name.range])
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: buffer[value.range])
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Each line of a JSON Lines body that holds a value (blank lines are skipped); a line
    /// that is not one JSON value fails the page, naming the line.
    static func forEachLine(of buffer: UnsafeBufferPointer<UInt8>, firstLine: Int = 0, status: Int, _ body: (JSONScanner.Value) -> Void) throws(SyncError) {
        var start = 0
        var number = firstLine
        let root = [JSONPointer("")!]
        while start < buffer.count {
            let end = buffer[start...].firstIndex(of: 0x0A) ?? buffer.count
            number += 1
            let line = UnsafeBufferPointer(rebasing: buffer[start..<end])
            if line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) {
                let value: JSONScanner.Value?
                do {
                    value = try JSONScanner.locate(root, in: line)[0]
                } catch let syntax {
                    throw SyncErrorFactory.invalidResponse("line \(number) of the JSON Lines body is not one JSON value (\(syntax))", status: status)
                }
                if let value { body(JSONScanner.Value(range: (value.range.lowerBound + start)..<(value.range.upperBound + start), kind: value.kind)) }
            }
            start = end + 1
        }
    }

    /// A string's text or a number's digits; `nil` for null and empty; other kinds fail.
    static func scalarText(_ value: JSONScanner.Value, in buffer: UnsafeBufferPointer<UInt8>, status: Int) throws(SyncError) -> String? {
        let text: String?
        switch value.kind {
        case .string: text = JSONScanner.string(value, in: buffer)
        case .number: text = JSONScanner.literal(value, in: buffer)
        case .null: text = nil
        default:
            throw SyncErrorFactory.invalidResponse("the pagination value is a JSON \(value.kind), not a string", status: status)
        }
        return text?.isEmpty == true ? nil : text
    }

    /// Whether the value at `found` is the scalar `expected` (numbers by value, strings by bytes).
    static func equals(_ found: JSONScanner.Value?, _ expected: JSONValue, in buffer: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let found else { return false }
        switch (found.kind, expected) {
        case (.null, .null): return true
        case (.bool, .bool(let b)): return (JSONScanner.literal(found, in: buffer) == "true") == b
        case (.string, .string(let s)): return JSONScanner.string(found, in: buffer, strict: true).map { $0.sameBytes(as: s) } ?? false
        case (.number, .number): return ExactNumber(JSONScanner.literal(found, in: buffer)) == expected.exactNumber
        default: return false
        }
    }
}

/// How incremental cursor values compare: numbers exactly by value (a JSON number, or a
/// string holding one, as a cursor too long for a float is stored), anything else as
/// strings (RFC 3339 timestamps in one format order correctly as strings); with
/// `cursor_format` (`time`), by the instant each names (`-04:00` and `Z` compare right).
public enum CursorOrder {
    public static func isGreater(_ a: JSONValue, than b: JSONValue, time: Bool = false) -> Bool {
        if time, let x = CursorTime.milliseconds(of: a), let y = CursorTime.milliseconds(of: b) { return x > y }
        if let x = a.exactNumber, let y = b.exactNumber { return x > y }
        // By bytes, the order both stores keep text in (Swift's `>` equates canonically
        // equivalent strings, so a newer cursor spelled another way never moved the saved one).
        return (JSONValue.scalarText(b) ?? "").bytesPrecede(JSONValue.scalarText(a) ?? "")
    }

    public static func max(_ a: JSONValue?, _ b: JSONValue, time: Bool = false) -> JSONValue {
        guard let a else { return b }
        return isGreater(b, than: a, time: time) ? b : a
    }
}
