import ArgumentParser
import Foundation
import SyncCore

/// `tributary sync start|list|show|cancel|retry|watch` and `tributary records`.
struct SyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync", abstract: "Start, follow, cancel and retry syncs.",
        subcommands: [Start.self, List.self, Show.self, Cancel.self, Retry.self, Watch.self, Deliveries.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue a sync of a source.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var source: String
        @Option(help: "full or incremental (default: incremental when the source has it).") var mode: SyncMode?
        @Option(help: "Priority, -1000…1000.") var priority: Int?
        @Flag(help: "Follow it until it ends; exit 1 if it failed, 2 if cancelled.") var wait = false

        func run() async throws {
            var body: JSONObject = [:]
            if let mode { body["mode"] = .string(mode.rawValue) }
            if let priority { body["priority"] = .number(Double(priority)) }
            let sync = try await connection.connection.call(.POST, "/v1/sources/\(PathSegment.encode(source))/syncs", body: .object(body))
            let id = Output.text(sync["id"])
            if wait { return try await SyncWatcher(connection: connection).follow(id) }
            if connection.json { Output.json(sync) } else { print("queued sync \(id)") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List syncs, newest first.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only this source (name or id).") var source: String?
        @Option(help: "Only these statuses (repeatable).") var status: [SyncStatus] = []
        @Option(help: "How many, 1…1000.") var limit = 20

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let source {
                let resolved = try await connection.connection.call(.GET, "/v1/sources/\(PathSegment.encode(source))")
                query.append("source_id=\(Output.text(resolved["id"]))")
            }
            query += status.map { "status=\($0.rawValue)" }
            let page = try await connection.connection.call(.GET, "/v1/syncs?" + query.joined(separator: "&"))
            let items = page["items"]?.arrayValue ?? []
            if connection.json { return Output.json(.array(items)) }
            Output.table(["ID", "STATUS", "MODE", "PAGES", "RECORDS", "QUEUED", "ERROR"], items.map { s in
                [Output.text(s["id"]), Output.text(s["status"]), Output.text(s["mode"]), Output.text(s["progress"]?["pages"]),
                 Output.text(s["progress"]?["records_read"]), Output.text(s["queued_at"]), Output.text(s["error"]?["code"])]
            })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one sync.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        func run() async throws { Output.json(try await connection.connection.call(.GET, "/v1/syncs/\(PathSegment.encode(id))")) }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a sync's webhook deliveries and their tries.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        func run() async throws {
            let page = try await connection.connection.call(.GET, "/v1/syncs/\(PathSegment.encode(id))/deliveries")
            if connection.json { return Output.json(page) }
            let items = page["items"]?.arrayValue ?? []
            if items.isEmpty { return print("no deliveries (the source has no webhook for this sync's events)") }
            Output.table(["ID", "EVENT", "STATUS", "TRIES", "ANSWER", "URL", "LAST ERROR"], items.map { d in
                [Output.text(d["id"]), Output.text(d["event"]), Output.text(d["status"]), Output.text(d["attempts"]),
                 Output.text(d["response_status"]), Output.text(d["url"]), Output.text(d["last_error"])]
            })
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a sync, wherever it runs; or, without an id, every sync the filters match (at most 10,000).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String?
        @OptionGroup var filter: BulkFilterOptions
        func run() async throws {
            guard let id else { return try await filter.apply("cancel", connection) }
            let sync = try await connection.connection.call(.POST, "/v1/syncs/\(PathSegment.encode(id))/cancel")
            if connection.json { Output.json(sync) } else { print("sync \(id): \(Output.text(sync["status"]))\(sync["cancel_requested"] == .bool(true) && sync["status"] != .string("cancelled") ? " (cancel requested)" : "")") }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue a failed or cancelled sync again (it resumes from its checkpoint); or, without an id, every one the filters match.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String?
        @OptionGroup var filter: BulkFilterOptions
        func run() async throws {
            guard let id else { return try await filter.apply("retry", connection) }
            let sync = try await connection.connection.call(.POST, "/v1/syncs/\(PathSegment.encode(id))/retry")
            if connection.json { Output.json(sync) } else { print("sync \(id): \(Output.text(sync["status"]))") }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Follow a sync until it ends (a progress bar on a terminal).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        func run() async throws { try await SyncWatcher(connection: connection).follow(id) }
    }
}

/// `--source`, `--status`, `--since`, `--until`: the body of `POST /v1/syncs/cancel|retry`.
struct BulkFilterOptions: ParsableArguments {
    @Option(help: "Only syncs of this source (id or name).") var source: String?
    @Option(help: "Only syncs in this status (repeatable).") var status: [SyncStatus] = []
    @Option(help: "Only syncs queued at or after this RFC 3339 time.") var since: String?
    @Option(help: "Only syncs queued before this RFC 3339 time.") var until: String?

    func apply(_ action: String, _ connection: ConnectionOptions) async throws {
        guard source != nil || !status.isEmpty || since != nil || until != nil else {
            throw CommandFailure("give a sync id, or at least one of --source, --status, --since, --until", exitCode: 3)
        }
        var body: JSONObject = [:]
        if let source { body["source_id"] = .string(source) }
        if !status.isEmpty { body["status"] = .array(status.map { .string($0.rawValue) }) }
        if let since { body["since"] = .string(since) }
        if let until { body["until"] = .string(until) }
        let result = try await connection.connection.call(.POST, "/v1/syncs/\(action)", body: .object(body))
        if connection.json { return Output.json(result) }
        print("\(action): \(HealthCommand.number(result["affected"])) of \(HealthCommand.number(result["matched"])) matching syncs")
    }
}

extension SyncMode: ExpressibleByArgument {}
extension SyncStatus: ExpressibleByArgument {}

/// Follows a sync: a live progress line on a terminal, one line per status change otherwise.
/// Exits 0 when it completes, 1 when it fails, 2 when it is cancelled.
///
/// Fed by the server's event stream (`GET /v1/syncs/{id}/events`): progress as pages
/// commit, without polling. A dropped stream is opened again with `Last-Event-ID` (five
/// tries a second apart), so a server restart does not end the watch.
struct SyncWatcher {
    let connection: ConnectionOptions

    func follow(_ id: String) async throws {
        let terminal = isatty(STDOUT_FILENO) == 1 && !connection.json
        let server = connection.connection
        var sync = try await server.call(.GET, "/v1/syncs/\(PathSegment.encode(id))")
        var lastStatus = ""
        var lastEventID: String?
        var failures = 0
        func show() {
            let status = Output.text(sync["status"])
            if terminal {
                // Unbuffered, so the line updates in place.
                FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + Self.progressLine(sync)).utf8))
            } else if status != lastStatus && !connection.json {
                print("\(id) \(status) pages=\(Output.text(sync["progress"]?["pages"])) records=\(Output.text(sync["progress"]?["records_read"]))")
            }
            lastStatus = status
        }
        show()
        while !Self.isTerminal(sync) {
            do {
                try await server.stream("/v1/syncs/\(PathSegment.encode(id))/events", lastEventID: lastEventID) { event in
                    lastEventID = event.id ?? lastEventID
                    switch event.name {
                    case "status": sync = event.data
                    case "progress": if case .object(var object) = sync { object["progress"] = event.data; sync = .object(object) }
                    default: return true
                    }
                    show()
                    return !Self.isTerminal(sync)
                }
                failures = 0
            } catch let failure as CommandFailure where failure.exitCode == 5 {
                failures += 1
                if failures > 5 { throw failure }
                try await Task.sleep(for: .seconds(1))
            }
            if !Self.isTerminal(sync) { sync = try await server.call(.GET, "/v1/syncs/\(PathSegment.encode(id))") }
        }
        show()
        if terminal { FileHandle.standardOutput.write(Data("\n".utf8)) }
        if connection.json { Output.json(sync) }
        if let error = sync["error"], error != .null, !connection.json {
            FileHandle.standardError.write(Data("\(Output.text(error["code"])): \(Output.text(error["message"]))\n".utf8))
        }
        switch Output.text(sync["status"]) {
        case "failed": throw ExitCode(1)
        case "cancelled": throw ExitCode(2)
        default: return
        }
    }

    static func isTerminal(_ sync: JSONValue) -> Bool {
        ["completed", "failed", "cancelled"].contains(sync["status"]?.stringValue ?? "")
    }

    /// `running  [#########···········]  41 pages  41000 records  +40000 ~900 =100  8120 rec/s`
    static func progressLine(_ sync: JSONValue) -> String {
        let p = sync["progress"]
        let pages = p?["pages"]?.intValue ?? 0
        let records = p?["records_read"]?.intValue ?? 0
        // Pages ahead are unknown, so the bar cycles through a window of 20 pages.
        let width = 20
        let filled = sync["status"] == .string("completed") ? width : Swift.max(0, pages % (width + 1))
        let bar = String(repeating: "#", count: filled) + String(repeating: "·", count: width - filled)
        let started = sync["started_at"]?.stringValue.flatMap(Timestamp.parse)
        let rate = started.map { Double(records) / max(0.001, Date().timeIntervalSince($0)) } ?? 0
        return "\(Output.text(sync["status"]).padding(toLength: 9, withPad: " ", startingAt: 0)) [\(bar)] \(pages) pages  \(records) records  "
            + "+\(p?["records_created"]?.intValue ?? 0) ~\(p?["records_updated"]?.intValue ?? 0) =\(p?["records_unchanged"]?.intValue ?? 0)  "
            + "\(Int(clamping: rate, to: 0...Int.max)) rec/s"
    }
}

/// `tributary records [list] SOURCE` and `tributary records follow SOURCE`.
struct RecordsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "records",
        abstract: "Print a source's records, follow its changes, or export them to a file.",
        subcommands: [RecordsList.self, RecordsFollow.self, RecordsExport.self],
        defaultSubcommand: RecordsList.self)
}

/// `tributary records follow SOURCE`: the change feed as JSON lines, the cursor kept in a file.
struct RecordsFollow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "follow",
        abstract: "Print a source's changes as JSON lines as they commit (op, key, record, change, changed_at, sync_id).",
        discussion: """
            Reads the change feed (docs/api.md, "Change feed") and waits for new changes. With --cursor-file the \
            cursor is written to the file after each page is printed, so a script that stops (or is killed) \
            resumes after the last page it printed: a page printed but not yet saved comes again. A cursor the \
            server answers 410 cursor_expired for (the source's records were reset) ends the command with an \
            error: delete the file to start again from the beginning.
            """)
    @OptionGroup var connection: ConnectionOptions
    @Argument var source: String
    @Option(help: "Start after this cursor (default: the cursor file's, else the beginning).") var after: String?
    @Option(help: "Read the cursor from this file at start and write it there after each page.") var cursorFile: String?
    @Flag(help: "Stop once the feed has nothing more now, instead of waiting.") var once = false

    func run() async throws {
        // A cursor file that cannot be written is found before anything is printed.
        if let cursorFile {
            let directory = URL(fileURLWithPath: cursorFile).deletingLastPathComponent().path
            guard access(directory, W_OK) == 0 else {
                throw CommandFailure("cannot write the cursor file \(cursorFile): \(String(cString: strerror(errno)))", exitCode: 3)
            }
        }
        var cursor = after
        if cursor == nil, let cursorFile, let saved = try? String(contentsOfFile: cursorFile, encoding: .utf8) {
            let trimmed = saved.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { cursor = trimmed }
        }
        let path = "/v1/sources/\(PathSegment.encode(source))/changes"
        let out = LineSink(FileHandle.standardOutput, owned: false)
        while true {
            var query = "limit=1000" + (once ? "" : "&wait=25")
            if let cursor { query += "&after=\(PathSegment.encode(cursor))" }
            // Each change printed as the server sent it (bodies byte for byte).
            let page = try await RawPage.get(connection.connection, "\(path)?\(query)", members: [])
            guard let next = page.nextCursor else {
                throw CommandFailure("the server's change page has no next_cursor", exitCode: 4)
            }
            for (item, _) in page.items { try out.write(item) }
            try out.flush()
            cursor = next
            if let cursorFile { try Self.save(next, to: cursorFile) }
            if once && page.hasMore != true { return }
        }
    }

    /// Writes the cursor whole or not at all (a temporary file renamed over the old one, as
    /// an export's file is).
    static func save(_ cursor: String, to file: String) throws {
        let destination = try ExportDestination(file: file)
        do {
            try destination.sink.write(Array(cursor.utf8))
            try destination.commit()
        } catch {
            destination.abandon()
            throw error
        }
    }
}

/// `tributary records SOURCE`: one JSON record per line.
struct RecordsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Print a source's records, one JSON object per line.",
        discussion: "Pages through the records API 1,000 at a time. When --limit stops it before the end, a note on stderr says so.")
    @OptionGroup var connection: ConnectionOptions
    @Argument var source: String
    @Option(help: "How many to print at most (default 50).") var limit = 50
    @Flag(help: "Print every record (ignores --limit).") var all = false

    func validate() throws {
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let out = LineSink(FileHandle.standardOutput, owned: false)
        var printed = 0
        var after: String?
        repeat {
            let want = all ? 1000 : min(1000, limit - printed)
            let query = "limit=\(want)" + (after.map { "&after=\(PathSegment.encode($0))" } ?? "")
            // Bodies as the server sent them, byte for byte.
            let page = try await RawPage.get(connection.connection, "/v1/sources/\(PathSegment.encode(source))/records?\(query)", members: ["data"])
            for (item, members) in page.items { try out.write(connection.json ? item : (members[0] ?? Array("null".utf8)[...])) }
            try out.flush()
            printed += page.items.count
            after = page.nextCursor
        } while after != nil && (all || printed < limit)
        if after != nil {
            FileHandle.standardError.write(Data("(\(printed) records printed; there are more: --limit N for more, --all for every one)\n".utf8))
        }
    }
}
