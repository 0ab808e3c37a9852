import SyncCore

/// Turns one upstream page (bytes) into records, record errors, the pagination value and
/// the largest incremental cursor, without building an object tree (see ``JSONScanner``).
struct PageParser {
    let config: HTTPJSONConfig

    struct Parsed {
        var records: [SourceRecord] = []
        var recordErrors: [RecordError] = []
        /// Elements in the records array (records and record errors).
        var elementCount = 0
        /// The string at the pagination path (next URL or cursor), if any.
        var paginationValue: String?
        /// The largest value of the incremental cursor field on the page.
        var maxCursor: JSONValue?
    }

    var paginationPath: JSONPointer? {
        switch config.pagination {
        case .nextURL(let path), .cursor(_, let path): path
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
            let pointers = [config.recordsPath] + (paginationPath.map { [$0] } ?? [])
            let located: [JSONScanner.Value?]
            do {
                located = try JSONScanner.locate(pointers, in: buffer)
            } catch let syntax {
                throw SyncErrorFactory.invalidResponse("the upstream body is not valid JSON (\(syntax))", status: status)
            }
            guard let array = located[0], array.kind == .array else {
                throw SyncErrorFactory.invalidResponse(
                    "the upstream body has no array at records_path \"\(config.recordsPath.description)\"", status: status)
            }
            var parsed = Parsed()
            if paginationPath != nil, let value = located[1] {
                switch value.kind {
                case .string: parsed.paginationValue = JSONScanner.string(value, in: buffer)
                case .number: parsed.paginationValue = JSONScanner.literal(value, in: buffer)
                case .null: break
                default:
                    throw SyncErrorFactory.invalidResponse("the pagination value is a JSON \(value.kind), not a string", status: status)
                }
                if parsed.paginationValue?.isEmpty == true { parsed.paginationValue = nil }
            }
            let fields = config.primaryKey + (config.incremental.map { [$0.cursorField] } ?? [])
            let keyCount = config.primaryKey.count
            JSONScanner.forEachElement(of: array, in: buffer, members: fields) { element, members in
                parsed.elementCount += 1
                func recordError(_ key: String?, _ message: String) {
                    parsed.recordErrors.append(RecordError(page: pageNumber, recordKey: key, message: message))
                }
                guard element.kind == .object else {
                    recordError(nil, "record is a JSON \(element.kind), not an object")
                    return
                }
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
                let key = keyCount == 1 ? RecordKey.single(parts[0]) : RecordKey.encode(parts)
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
                    if let cursor { parsed.maxCursor = CursorOrder.max(parsed.maxCursor, cursor) }
                }
                parsed.records.append(SourceRecord(key: key, data: Array(buffer[element.range])))
            }
            return parsed
        }
    }
}

/// How incremental cursor values compare: numbers exactly by value (a JSON number, or a
/// string holding one, as a cursor too long for a float is stored), anything else as
/// strings (RFC 3339 timestamps in one format order correctly as strings).
public enum CursorOrder {
    public static func isGreater(_ a: JSONValue, than b: JSONValue) -> Bool {
        if let x = a.exactNumber, let y = b.exactNumber { return x > y }
        // By bytes, the order both stores keep text in (Swift's `>` equates canonically
        // equivalent strings, so a newer cursor spelled another way never moved the saved one).
        return (JSONValue.scalarText(b) ?? "").bytesPrecede(JSONValue.scalarText(a) ?? "")
    }

    public static func max(_ a: JSONValue?, _ b: JSONValue) -> JSONValue {
        guard let a else { return b }
        return isGreater(b, than: a) ? b : a
    }
}
