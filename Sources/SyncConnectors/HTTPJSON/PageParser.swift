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

    func parse(_ body: [UInt8], pageNumber: Int, status: Int) throws(SyncError) -> Parsed {
        try body.withUnsafeBufferPointer { (buffer) throws(SyncError) -> Parsed in
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
                guard element.kind == .object else {
                    parsed.recordErrors.append(RecordError(page: pageNumber, recordKey: nil, message: "record is a JSON \(element.kind), not an object"))
                    return
                }
                var components: [String] = []
                for i in config.primaryKey.indices {
                    guard let value = members[i] else { break }
                    switch value.kind {
                    case .string: components.append(JSONScanner.string(value, in: buffer) ?? "")
                    case .number: components.append(JSONScanner.literal(value, in: buffer))
                    default: break
                    }
                    if components.count != i + 1 { break }
                }
                guard components.count == keyCount else {
                    let missing = config.primaryKey[components.count]
                    parsed.recordErrors.append(RecordError(
                        page: pageNumber, recordKey: nil,
                        message: "record has no usable primary key field \"\(missing)\" (a string or number is required)"))
                    return
                }
                let key = keyCount == 1 ? components[0] : Self.compositeKey(components)
                if element.range.count > config.maxRecordBytes {
                    parsed.recordErrors.append(RecordError(
                        page: pageNumber, recordKey: key,
                        message: "record is \(element.range.count) bytes, over max_record_bytes \(config.maxRecordBytes)"))
                    return
                }
                if config.incremental != nil, let value = members[keyCount] {
                    let cursor: JSONValue? = switch value.kind {
                    case .string: JSONScanner.string(value, in: buffer).map(JSONValue.string)
                    case .number: Double(JSONScanner.literal(value, in: buffer)).map(JSONValue.number)
                    default: nil
                    }
                    if let cursor { parsed.maxCursor = CursorOrder.max(parsed.maxCursor, cursor) }
                }
                parsed.records.append(SourceRecord(key: key, data: Array(buffer[element.range])))
            }
            return parsed
        }
    }

    /// A stable encoding of a composite key: a JSON array of the components' texts.
    static func compositeKey(_ components: [String]) -> String {
        "[" + components.map(jsonQuoted).joined(separator: ",") + "]"
    }

    static func jsonQuoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// How incremental cursor values compare: numbers numerically, anything else as strings
/// (RFC 3339 timestamps in one format order correctly as strings).
public enum CursorOrder {
    public static func isGreater(_ a: JSONValue, than b: JSONValue) -> Bool {
        switch (a, b) {
        case (.number(let x), .number(let y)): x > y
        default: (JSONValue.scalarText(a) ?? "") > (JSONValue.scalarText(b) ?? "")
        }
    }

    public static func max(_ a: JSONValue?, _ b: JSONValue) -> JSONValue {
        guard let a else { return b }
        return isGreater(b, than: a) ? b : a
    }
}
