import ArgumentParser
import Foundation
import SyncConnectors
import SyncCore

/// `tributary records export SOURCE`: a source's records written to a file as JSON lines or
/// CSV, in bounded memory; with `--after`, only the records changed after a feed cursor.
struct RecordsExport: AsyncParsableCommand {
    enum Format: String, ExpressibleByArgument, CaseIterable { case jsonl, csv }

    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a source's records (their bodies) as JSON lines or CSV.",
        discussion: """
            Without --after: every live record (with --include-deleted, every stored one), streamed from the \
            records API as JSON lines, in key order. With --after CURSOR (a change feed cursor, docs/api.md \
            "Change feed"): the records changed after it, read from the feed, and the cursor to pass next time \
            printed on stderr as `next_cursor=…`. jsonl writes each record's body on a line; csv writes one row \
            per record with the union of the bodies' top-level fields as columns (in the order first seen), \
            nested values as JSON text, and a record whose body is not an object in the column `_body`. \
            Values are written as the upstream sent them: a spreadsheet may read a cell starting with = as a \
            formula. --output writes the file whole or not at all (a temporary file renamed over it, \
            removed when SIGINT or SIGTERM ends the export).
            """)
    @OptionGroup var connection: ConnectionOptions
    @Argument var source: String
    @Option(help: "jsonl or csv.") var format: Format = .jsonl
    @Option(name: [.short, .long], help: "The file to write (default: standard output).") var output: String?
    @Option(help: "Only the records changed after this change feed cursor.") var after: String?
    @Flag(help: "Deleted records too.") var includeDeleted = false

    func run() async throws {
        let destination = try ExportDestination(output)
        do {
            switch format {
            case .jsonl:
                _ = try await writeBodies(to: destination.sink, learningColumns: false)
            case .csv:
                // Two passes: the bodies to a scratch file (learning the columns), then the rows.
                let scratch = try ExportDestination.scratch(beside: output)
                defer { scratch.remove() }
                let columns = try await writeBodies(to: scratch.sink, learningColumns: true)
                try scratch.sink.close()
                try CSVWriter.write(linesOf: scratch.path, columns: columns, to: destination.sink)
            }
            try destination.commit()
        } catch {
            destination.abandon()
            throw error
        }
    }

    static let dataPointer = [JSONPointer("/data")].compactMap { $0 }

    /// Writes each record's body as a line, byte for byte as stored (never parsed into numbers
    /// that would round); with `learningColumns` (CSV), returns the objects' top-level fields
    /// in the order first seen (and `_body` if some body was not an object).
    private func writeBodies(to sink: LineSink, learningColumns: Bool) async throws -> [String] {
        var columns = ColumnSet()
        func take(_ body: ArraySlice<UInt8>) throws {
            if learningColumns { columns.add(body) }
            try sink.write(body)
        }
        let path = "/v1/sources/\(PathSegment.encode(source))"
        if let start = after {
            var cursor = start
            var more = true
            while more {
                let page = try await RawPage.get(connection.connection, "\(path)/changes?limit=10000&after=\(PathSegment.encode(cursor))",
                                                 members: ["op", "record"])
                guard let next = page.nextCursor else { throw CommandFailure("the server's change page has no next_cursor", exitCode: 4) }
                for (_, members) in page.items {
                    guard let record = members[1] else { continue }
                    if !includeDeleted, members[0].map({ Array($0) }) == Array(#""deleted""#.utf8) { continue }
                    try take(record)
                }
                cursor = next
                more = page.hasMore == true
            }
            FileHandle.standardError.write(Data("next_cursor=\(cursor)\n".utf8))
        } else {
            let response = try await connection.connection.open(
                "\(path)/records" + (includeDeleted ? "?include_deleted=true" : ""), accept: "application/x-ndjson")
            var splitter = LineSplitter()
            for try await chunk in response.body {
                try splitter.feed(chunk.readableBytesView) { line in
                    let line = Array(line)
                    let data = try line.withUnsafeBufferPointer { document in
                        try? JSONScanner.locate(Self.dataPointer, in: document).first ?? nil
                    }
                    guard let data else { throw CommandFailure("the server sent a line that is not a record", exitCode: 4) }
                    try take(line[data.range])
                }
            }
            guard splitter.isEmpty else { throw CommandFailure("the export stream ended inside a record", exitCode: 5) }
        }
        try sink.flush()
        return columns.names
    }
}

/// Splits a byte stream into lines (without their `\n`).
struct LineSplitter {
    private var pending: [UInt8] = []
    var isEmpty: Bool { pending.isEmpty }

    mutating func feed(_ bytes: some Collection<UInt8>, _ line: (ArraySlice<UInt8>) throws -> Void) throws {
        pending += bytes
        var start = pending.startIndex
        while let end = pending[start...].firstIndex(of: 10) {
            try line(pending[start..<end])
            start = end + 1
        }
        pending.removeSubrange(..<start)
    }
}

extension JSONScanner {
    /// The pointer list that locates the whole document (and validates it).
    static let wholeDocument = [JSONPointer("")].compactMap { $0 }
}

/// The columns of a CSV export: top-level field names in the order first seen, compared
/// byte for byte (Swift's `String` equality would make one column of two names that differ
/// only in Unicode normalization, and drop one of their values).
struct ColumnSet {
    private(set) var names: [String] = []
    private var seen: Set<BytewiseString> = []

    mutating func add(_ body: ArraySlice<UInt8>) {
        let fields: [String] = Array(body).withUnsafeBufferPointer { document in
            guard let root = (try? JSONScanner.locate(JSONScanner.wholeDocument, in: document))?.first ?? nil,
                  root.kind == .object else { return ["_body"] }
            var names: [String] = []
            JSONScanner.forEachMember(of: root, in: document) { key, _ in names.append(JSONScanner.string(key, in: document) ?? "") }
            return names
        }
        for name in fields where seen.insert(BytewiseString(name)).inserted { names.append(name) }
    }
}

/// Buffered output of lines to a file descriptor.
final class LineSink {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private let owned: Bool

    init(_ handle: FileHandle, owned: Bool) {
        self.handle = handle
        self.owned = owned
        buffer.reserveCapacity(1 << 17)
    }

    func write(_ line: some Collection<UInt8>) throws {
        buffer += line
        buffer.append(10)
        if buffer.count >= 1 << 16 { try flush() }
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        try flush()
        if owned { try handle.close() }
    }
}

/// Where an export goes: standard output, or a temporary file renamed over `--output` at the end.
struct ExportDestination {
    let sink: LineSink
    let path: String
    private let final: String?

    /// Standard output for `nil` or `-`, else the file `output`.
    init(_ output: String?) throws {
        guard let output, output != "-" else {
            self.init(sink: LineSink(FileHandle.standardOutput, owned: false), path: "-")
            return
        }
        try self.init(file: output)
    }

    /// The file `file` (whatever its name), written through a temporary file beside it.
    init(file: String) throws {
        let url = URL(fileURLWithPath: file)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp").path
        self.init(sink: try Self.create(temporary, else: "cannot write \(file)"), path: temporary, final: file)
    }

    /// A new file at `path`, for writing; `failure` and the reason if it cannot be made.
    /// The file goes with an interrupt (SIGINT, SIGTERM) until it is committed or abandoned.
    private static func create(_ path: String, else failure: String) throws -> LineSink {
        InterruptCleanup.remove(onInterrupt: path)
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            InterruptCleanup.forget(path)
            throw CommandFailure("\(failure): \(String(cString: strerror(errno)))", exitCode: 3)
        }
        return LineSink(handle, owned: true)
    }

    private init(sink: LineSink, path: String, final: String? = nil) {
        self.sink = sink
        self.path = path
        self.final = final
    }

    /// A scratch file beside the output (or in the temporary directory).
    static func scratch(beside output: String?) throws -> ExportDestination {
        let directory = output.flatMap { $0 == "-" ? nil : URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? NSTemporaryDirectory()
        let path = URL(fileURLWithPath: directory).appendingPathComponent(".tributary-export.\(getpid()).jsonl").path
        return ExportDestination(sink: try create(path, else: "cannot write a scratch file in \(directory)"), path: path)
    }

    func commit() throws {
        try sink.close()
        guard let final else { return }
        guard rename(path, final) == 0 else {
            throw CommandFailure("cannot write \(final): \(String(cString: strerror(errno)))", exitCode: 3)
        }
        InterruptCleanup.forget(path)
    }

    func abandon() {
        try? sink.close()
        if final != nil { try? FileManager.default.removeItem(atPath: path) }
        InterruptCleanup.forget(path)
    }

    /// Removes a scratch file.
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
        InterruptCleanup.forget(path)
    }
}

/// RFC 4180 CSV from a file of JSON lines.
enum CSVWriter {
    static func write(linesOf path: String, columns: [String], to sink: LineSink) throws {
        try sink.write(Array(columns.map(field).joined(separator: ",").utf8))
        guard let input = FileHandle(forReadingAtPath: path) else { throw CommandFailure("cannot read \(path)", exitCode: 1) }
        defer { try? input.close() }
        var splitter = LineSplitter()
        while let chunk = try input.read(upToCount: 1 << 16), !chunk.isEmpty {
            try splitter.feed(chunk) { line in
                let cells = Array(line).withUnsafeBufferPointer { document -> [String] in
                    guard let root = (try? JSONScanner.locate(JSONScanner.wholeDocument, in: document))?.first ?? nil else {
                        return columns.map { _ in "" }
                    }
                    var values: [BytewiseString: String] = [:]
                    if root.kind == .object {
                        // A repeated name: the last one, as a JSON parser reads it.
                        JSONScanner.forEachMember(of: root, in: document) { key, value in
                            values[BytewiseString(JSONScanner.string(key, in: document) ?? "")] = text(value, in: document)
                        }
                    } else {
                        values[BytewiseString("_body")] = text(root, in: document)
                    }
                    return columns.map { values[BytewiseString($0)] ?? "" }
                }
                try sink.write(Array(cells.map(field).joined(separator: ",").utf8))
            }
        }
    }

    /// A value as a cell: a string's text, null as empty, anything else as its JSON text as
    /// the upstream wrote it (numbers keep every digit).
    static func text(_ value: JSONScanner.Value, in document: UnsafeBufferPointer<UInt8>) -> String {
        switch value.kind {
        case .null: return ""
        case .string: return JSONScanner.string(value, in: document) ?? ""
        default: return JSONScanner.literal(value, in: document)
        }
    }

    /// Quoted when it holds a comma, a quote, a line break or edge spaces (quotes doubled).
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) || text.first == " " || text.last == " " else {
            return text
        }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A page of a list route read as the server sent it: each item's bytes and the page's
/// cursor fields, never parsed into numbers that would round (`9007199254740993`) or
/// strings that would not decode (a lone `\ud800` escape), so nothing is dropped or changed.
struct RawPage {
    var bytes: [UInt8]
    /// Each item whole, and the named members of each (`nil` when absent).
    var items: [(item: ArraySlice<UInt8>, members: [ArraySlice<UInt8>?])] = []
    var nextCursor: String?
    var hasMore: Bool?

    /// GET `path` as JSON; a body that is not a page of `items` is an error (exit 4).
    static func get(_ connection: ServerConnection, _ path: String, members: [String]) async throws -> RawPage {
        let response = try await connection.open(path, accept: "application/json")
        var page = RawPage(bytes: Array((try await response.body.collect(upTo: 64 << 20)).readableBytesView))
        let bytes = page.bytes
        let parsed: Bool = bytes.withUnsafeBufferPointer { document in
            guard let found = try? JSONScanner.locate(
                [JSONPointer("/items"), JSONPointer("/next_cursor"), JSONPointer("/has_more")].compactMap { $0 }, in: document),
                  let items = found[0], items.kind == .array else { return false }
            JSONScanner.forEachElement(of: items, in: document, members: members) { item, values in
                page.items.append((bytes[item.range], values.map { $0.map { bytes[$0.range] } }))
            }
            page.nextCursor = found[1].flatMap { JSONScanner.string($0, in: document) }
            page.hasMore = found[2].map { JSONScanner.literal($0, in: document) == "true" }
            return true
        }
        guard parsed else {
            throw CommandFailure("the server at \(connection.shownURL) answered \(path.split(separator: "?").first ?? "") with something that is not a page of items", exitCode: 4)
        }
        return page
    }
}
