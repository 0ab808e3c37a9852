import Foundation
import Synchronization
import Testing
import SyncCore
import TestSupport

/// The client commands against a real server process, with docs/api.md's exit statuses.
@Suite("Command-line client", .serialized)
struct CLITests {
    /// `records export` writes the bodies byte for byte as JSON lines (a 2^53 + 1 integer and
    /// `1.50` keep their digits), as RFC 4180 CSV with the union of the top-level fields
    /// (nested values as their JSON, quotes doubled, a line break inside quotes), and with
    /// `--after` only what changed after a feed cursor, printing the next cursor.
    @Test func exportWritesJSONLinesAndCSVExactly() async throws {
        let dir = try TemporaryDirectory("e2e-cli-export")
        defer { dir.remove() }
        let upstream = FixtureUpstream(items: 0)
        try await upstream.start()
        defer { Task { await upstream.stop() } }
        let bodies = [
            #"{"id":"a","n":9007199254740993,"note":"comma, \"quote\"\nline","nested":{"x":[1,2]}}"#,
            #"{"id":"b","n":1.50,"extra":true}"#,
            // Two names that differ only in Unicode normalization (NFC, NFD) are two columns.
            #"{"id":"c","note":"é café ☕","caf\#u{E9}":1,"cafe\#u{301}":2}"#,
        ]
        let current = Mutex(bodies)
        upstream.script { _ in .json(#"{"rows":[\#(current.withLock { $0 }.joined(separator: ","))]}"#) }
        let server = try await TributaryProcess(serve: ["--database", "sqlite:cli.sqlite", "--workers", "1"], directory: dir)
        let env = ["TRIBUTARY_URL": server.baseURL]
        func cli(_ args: [String]) async throws -> (Int32, String) { try await runTributary(args, directory: dir, environment: env) }
        var (code, out) = try await cli(["source", "add", "x", "--kind", "http-json", "--config",
                                         #"{"url": "\#(upstream.baseURL)/s/rows", "records_path": "/rows", "primary_key": "id"}"#])
        #expect(code == 0, "\(out)")
        (code, out) = try await cli(["sync", "start", "x", "--wait"])
        #expect(code == 0, "\(out)")
        (code, out) = try await cli(["records", "export", "x", "-o", dir.file("x.jsonl")])
        #expect(code == 0, "\(out)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("x.jsonl")))) == Array((bodies.joined(separator: "\n") + "\n").utf8))
        (code, out) = try await cli(["records", "export", "x", "--format", "csv", "-o", dir.file("x.csv")])
        #expect(code == 0, "\(out)")
        // Compared as bytes: Swift's String equality would take NFC and NFD as one.
        let csv = """
            id,n,note,nested,extra,caf\u{E9},cafe\u{301}
            a,9007199254740993,"comma, ""quote""
            line","{""x"":[1,2]}",,,
            b,1.50,,,true,,
            c,,é café ☕,,,1,2

            """
        let written = Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("x.csv"))))
        #expect(written == Array(csv.utf8), "\(String(decoding: written, as: UTF8.self))")
        // Only what changed after a cursor, and the cursor to go on from.
        let cursor = try #require(try await server.client.get("/v1/sources/x/changes").json["next_cursor"]?.stringValue)
        current.withLock { $0[1] = #"{"id":"b","n":2}"# }
        (code, out) = try await cli(["sync", "start", "x", "--wait"])
        #expect(code == 0, "\(out)")
        (code, out) = try await cli(["records", "export", "x", "--after", cursor])
        #expect(code == 0 && out.contains(#"{"id":"b","n":2}"#) && !out.contains(#""id":"a""#), "\(out)")
        let next = try #require(out.split(separator: "\n").first { $0.hasPrefix("next_cursor=") }?.dropFirst("next_cursor=".count))
        (code, out) = try await cli(["records", "export", "x", "--after", String(next)])
        #expect(code == 0 && !out.contains("{"), "nothing after the new cursor: \(out)")
        // follow and list print bodies as stored, byte for byte: a lone surrogate escape, a
        // 2^63 integer and a repeated member neither vanish nor change.
        let hostile = #"{"id":"d","s":"\ud800","big":9223372036854775808,"dup":1,"dup":2,"neg":-0}"#
        current.withLock { $0.append(hostile) }
        (code, out) = try await cli(["sync", "start", "x", "--wait"])
        #expect(code == 0, "\(out)")
        (code, out) = try await cli(["records", "follow", "x", "--once"])
        #expect(code == 0 && out.contains(#""record":\#(hostile)"#) && out.contains(#""record":{"id":"b","n":2}"#), "\(out)")
        #expect(out.split(separator: "\n").filter { $0.hasPrefix("{") }.count == 4, "\(out)")
        (code, out) = try await cli(["records", "x", "--all"])
        #expect(code == 0 && out.split(separator: "\n").contains(Substring(hostile)), "\(out)")
        // A server answering something that is not a page (here the dashboard's HTML) is an
        // error, not an empty feed.
        (code, out) = try await runTributary(["records", "follow", "x", "--once", "--server", server.baseURL + "/?x="], directory: dir)
        #expect(code == 4, "\(out)")
        // A file that cannot be written (no such directory; a directory in its place) is a
        // usage error, exit 3, not 1 (a failed sync).
        for target in [dir.file("missing/dir/x.jsonl"), dir.path] {
            (code, out) = try await cli(["records", "export", "x", "-o", target])
            #expect(code == 3 && out.contains("cannot write"), "\(target): \(code) \(out)")
        }
        // A failed export leaves no file behind, and an existing one untouched.
        (code, out) = try await cli(["records", "export", "nope", "-o", dir.file("x.jsonl")])
        #expect(code == 4, "\(out)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("x.jsonl")))) == Array((bodies.joined(separator: "\n") + "\n").utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }.isEmpty)
        #expect(try await server.terminate() == 0)
    }

    /// `records export -o` interrupted by SIGINT or SIGTERM leaves neither its temporary file
    /// nor a partial output behind, and ends as the signal ends a process (128 + its number).
    @Test func anInterruptedExportLeavesNoFileBehind() async throws {
        let dir = try TemporaryDirectory("e2e-cli-interrupt")
        defer { dir.remove() }
        let server = try await TributaryProcess(serve: ["--database", "sqlite:cli.sqlite", "--workers", "1"], directory: dir)
        let env = ["TRIBUTARY_URL": server.baseURL]
        var (code, out) = try await runTributary(["source", "add", "big", "--kind", "synthetic", "--config", #"{"records": 200000, "page_size": 5000}"#],
                                                 directory: dir, environment: env)
        #expect(code == 0, "\(out)")
        (code, out) = try await runTributary(["sync", "start", "big", "--wait"], directory: dir, environment: env)
        #expect(code == 0, "\(out)")
        for (number, format) in [(SIGINT, "jsonl"), (SIGTERM, "csv")] {
            let target = dir.file("out-\(number).\(format)")
            let export = try TributaryProcess.launch(["records", "export", "big", "--format", format, "-o", target],
                                                     directory: dir, environment: env, output: dir.file("export-\(number).log"))
            let path = dir.path
            let leftovers: @Sendable () throws -> [String] = {
                try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".tmp") || $0.hasPrefix(".tributary-export") }
            }
            // Signalled while it writes (stopped first, so the export cannot finish in between).
            _ = try await eventually(timeout: .seconds(30), every: .milliseconds(2)) { try leftovers().isEmpty ? nil : true }
            export.signal(SIGSTOP)
            export.signal(number)
            export.signal(SIGCONT)
            #expect(try await export.wait(timeout: .seconds(10)) == 128 + number, "\(format)")
            let left = try leftovers()
            #expect(left.isEmpty, "\(left)")
            #expect(!FileManager.default.fileExists(atPath: target))
        }
        #expect(try await server.terminate() == 0)
    }

    /// Nothing the client prints holds its token or the password of its server URL: a token
    /// read from a file with a Windows line end works (the `\r\n` is not part of it), one that
    /// no header can carry is a usage error (exit 3) that names the option, not the value,
    /// and an unreachable server with a password in its URL is shown with `***`.
    @Test func theClientNeverPrintsItsTokenOrPassword() async throws {
        let dir = try TemporaryDirectory("e2e-cli-secrets")
        defer { dir.remove() }
        let server = try await TributaryProcess(serve: ["--database", "sqlite:cli.sqlite", "--token", "admin:Zq9admin"], directory: dir)
        func cli(_ args: [String], _ env: [String: String]) async throws -> (Int32, String) { try await runTributary(args, directory: dir, environment: env) }
        var (code, out) = try await cli(["source", "list"], ["TRIBUTARY_URL": server.baseURL, "TRIBUTARY_TOKEN": "Zq9admin\r\n"])
        #expect(code == 0, "\(out)")
        for bad in ["Zq9ad min", "Zq9admin\u{7}", "Zq9\r\nX-Injected: 1"] {
            (code, out) = try await cli(["source", "list"], ["TRIBUTARY_URL": server.baseURL, "TRIBUTARY_TOKEN": bad])
            #expect(code == 3, "\(out)")
            #expect(out.contains("TRIBUTARY_TOKEN") && !out.contains("Zq9"), "\(out)")
        }
        let closed = try PostgresCluster.freePort()
        (code, out) = try await cli(["source", "list", "--server", "http://alice:Zq9password@127.0.0.1:\(closed)", "--token", "Zq9admin"], [:])
        #expect(code == 5, "\(out)")
        #expect(out.contains("***") && !out.contains("Zq9"), "\(out)")
        #expect(try await server.terminate() == 0)
    }

    @Test func sourcesSyncsAndExitStatuses() async throws {
        let dir = try TemporaryDirectory("e2e-cli")
        defer { dir.remove() }
        let server = try await TributaryProcess(serve: ["--database", "sqlite:cli.sqlite", "--workers", "1"], directory: dir)
        let env = ["TRIBUTARY_URL": server.baseURL]
        func cli(_ args: [String]) async throws -> (Int32, String) { try await runTributary(args, directory: dir, environment: env) }

        var (code, out) = try await cli(["source", "add", "demo", "--kind", "synthetic", "--config", #"{"records": 2500, "page_size": 500}"#])
        #expect(code == 0, "\(out)")
        #expect(out.contains("created source demo"))
        (code, out) = try await cli(["sync", "start", "demo", "--wait"])
        #expect(code == 0, "\(out)")
        #expect(out.contains("completed"))
        (code, out) = try await cli(["sync", "list", "--source", "demo", "--json"])
        #expect(code == 0)
        let listed = try parseJSON(Array(out.utf8))
        #expect(listed.arrayValue?.first?["result"]?["records_created"] == .number(2500))
        #expect(listed.arrayValue?.first?["trigger"] == .string("cli"))
        (code, out) = try await cli(["source", "list"])
        #expect(code == 0 && out.contains("demo") && out.contains("ok"), "\(out)")
        (code, out) = try await cli(["records", "demo", "--limit", "2"])
        #expect(code == 0)
        // Two records, and a note (stderr, here in the same output) that more exist.
        #expect(out.split(separator: "\n").filter { $0.hasPrefix("{") }.count == 2, "\(out)")
        #expect(out.contains("there are more"), "\(out)")
        // Past one page of the API (1,000), and every one with --all, without the note.
        (code, out) = try await cli(["records", "demo", "--limit", "1500"])
        #expect(code == 0 && out.split(separator: "\n").filter { $0.hasPrefix("{") }.count == 1500)
        (code, out) = try await cli(["records", "demo", "--all"])
        #expect(code == 0 && out.split(separator: "\n").filter { $0.hasPrefix("{") }.count == 2500)
        #expect(!out.contains("there are more"))
        // The change feed as JSON lines, the cursor kept in a file: a second run goes on after
        // the first, and a reset's expired cursor is an error until the file is removed.
        let cursorFile = dir.file("crm.cursor")
        (code, out) = try await cli(["records", "follow", "demo", "--once", "--cursor-file", cursorFile])
        var lines = out.split(separator: "\n").filter { $0.hasPrefix("{") }.map { try? parseJSON(Array($0.utf8)) }
        #expect(code == 0 && lines.count == 2500, "\(out.prefix(300))")
        #expect(Set(lines.compactMap { $0?["key"]?.stringValue }).count == 2500)
        #expect(lines.allSatisfy { $0?["op"] == .string("created") && $0?["record"]?.objectValue != nil })
        #expect((try? String(contentsOfFile: cursorFile, encoding: .utf8))?.isEmpty == false)
        (code, out) = try await cli(["records", "follow", "demo", "--once", "--cursor-file", cursorFile])
        #expect(code == 0 && !out.contains("{"), "nothing new: \(out.prefix(300))")
        // A cursor file that cannot be written is a usage error before anything is printed.
        (code, out) = try await cli(["records", "follow", "demo", "--once", "--cursor-file", dir.file("missing/dir/cf")])
        #expect(code == 3 && !out.contains("{") && out.contains("cursor file"), "\(out.prefix(300))")
        (code, out) = try await cli(["source", "reset", "demo", "--records"])
        #expect(code == 0, "\(out)")
        (code, out) = try await cli(["records", "follow", "demo", "--once", "--cursor-file", cursorFile])
        #expect(code != 0 && out.contains("cursor_expired") || out.contains("expired"), "\(out)")
        try FileManager.default.removeItem(atPath: cursorFile)
        (code, out) = try await cli(["records", "follow", "demo", "--once", "--cursor-file", cursorFile])
        lines = out.split(separator: "\n").filter { $0.hasPrefix("{") }.map { try? parseJSON(Array($0.utf8)) }
        #expect(code == 0 && lines.count == 2500 && lines.allSatisfy { $0?["op"] == .string("deleted") }, "\(out.prefix(300))")
        (code, out) = try await cli(["health", "--json"])
        #expect(code == 0, "\(out)")
        let health = try parseJSON(Array(out.utf8))
        #expect(health["status"] == .string("ok"), "\(out)")
        let workers = health["checks"]?.arrayValue?.first { $0["name"] == .string("workers") }
        #expect(workers?["nodes"]?.arrayValue?.count == 1 && workers?["live_workers"] == .number(1), "\(out)")
        (code, out) = try await cli(["health"])
        #expect(code == 0 && out.contains("status: ok") && out.contains("database"), "\(out)")
        (code, out) = try await cli(["stats", "--window", "1h"])
        #expect(code == 0 && out.contains("window 1h: 1 completed, 0 failed") && out.contains("2500 read"), "\(out)")
        (code, out) = try await cli(["stats", "--window", "2h"])
        #expect(code == 4 && out.contains("window"), "\(out)")
        (code, out) = try await cli(["prune", "--older-than", "0", "--keep-last", "1", "--json"])
        #expect(code == 0 && (try? parseJSON(Array(out.utf8)))?["deleted_syncs"] == .number(0), "\(out)")

        // Watching follows the event stream: a 2 s sync is watched with one read of the sync
        // and one stream, not four reads a second.
        (code, out) = try await cli(["source", "add", "paced", "--kind", "synthetic", "--config", #"{"records": 50, "page_size": 10, "delay_ms_per_page": 400}"#])
        #expect(code == 0)
        @Sendable func count(_ route: String, in metrics: String) -> Double {
            metrics.split(separator: "\n").first { $0.hasPrefix("tributary_http_request_duration_seconds_count") && $0.contains("route=\"\(route)\"") && $0.contains("method=\"GET\"") }
                .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } ?? 0
        }
        let before = try await server.client.get("/metrics").text
        (code, out) = try await cli(["sync", "start", "paced", "--wait"])
        #expect(code == 0 && out.contains("running") && out.contains("completed"), "\(out)")
        // The watch command's own requests: what the server counted while it ran (a stream is
        // counted when it ends, moments after the command has its answer).
        let after = try await eventually(timeout: .seconds(10)) { () -> String? in
            let text = try await server.client.get("/metrics").text
            return count("/v1/syncs/{id}/events", in: text) > count("/v1/syncs/{id}/events", in: before) ? text : nil
        }
        func delta(_ route: String) -> Double { count(route, in: after) - count(route, in: before) }
        #expect(delta("/v1/syncs/{id}/events") == 1, "streams opened: \(delta("/v1/syncs/{id}/events"))")
        #expect(delta("/v1/syncs/{id}") <= 2, "polled: \(delta("/v1/syncs/{id}")) reads of the sync")

        // A cancelled sync: watch exits 2.
        (code, out) = try await cli(["source", "add", "slow", "--kind", "synthetic", "--config", #"{"records": 100, "page_size": 10, "delay_ms_per_page": 60000}"#])
        (code, out) = try await cli(["sync", "start", "slow", "--json"])
        let id = try #require(try parseJSON(Array(out.utf8))["id"]?.stringValue)
        (code, _) = try await cli(["sync", "cancel", id])
        #expect(code == 0)
        (code, _) = try await cli(["sync", "watch", id])
        #expect(code == 2)
        // Bulk: by filter, each under the single-sync rules; no id and no filter is a usage error.
        (code, out) = try await cli(["sync", "retry", "--source", "slow"])
        #expect(code == 0 && out.contains("retry: 1 of 1 matching syncs"), "\(out)")
        (code, out) = try await cli(["sync", "cancel", "--source", "slow", "--status", "queued", "--status", "running"])
        #expect(code == 0 && out.contains("cancel: 1 of 1 matching syncs"), "\(out)")
        (code, out) = try await cli(["sync", "cancel"])
        #expect(code == 3, "\(out)")
        (code, out) = try await cli(["source", "pause", "slow"])
        #expect(code == 0 && out.contains("paused source slow"), "\(out)")
        #expect(try await server.client.get("/v1/sources/slow").json["paused"] == .bool(true))
        (code, out) = try await cli(["source", "resume", "slow"])
        #expect(code == 0 && out.contains("resumed source slow"), "\(out)")
        // A reset from the command line is kept in the source's resets as the CLI's.
        (code, out) = try await cli(["source", "reset", "slow", "--records"])
        #expect(code == 0 && out.contains("reset source slow: cursor cleared") && out.contains("records deleted"), "\(out)")
        let resets = try await server.client.get("/v1/sources/slow/resets").json["items"]?.arrayValue ?? []
        #expect(resets.first?["trigger"] == .string("cli") && resets.first?["records"] == .bool(true), "\(resets)")

        // A failed sync: exit 1, its error on stderr.
        let created = try await server.client.post("/v1/sources", #"{"name": "bad", "kind": "synthetic", "config": {"records": 10, "fail_every_n_pages": 1}, "retry": {"max_attempts": 1}}"#)
        #expect(created.status == 201)
        (code, out) = try await cli(["sync", "start", "bad", "--wait"])
        #expect(code == 1, "\(out)")
        #expect(out.contains("attempts_exhausted"))

        // The server answers with a problem: exit 4, its detail on stderr.
        (code, out) = try await cli(["source", "show", "nope"])
        #expect(code == 4)
        #expect(out.contains("No source nope"))
        // Usage error: exit 3.
        (code, _) = try await cli(["sync", "start"])
        #expect(code == 3)
        (code, _) = try await cli(["source", "add", "x", "--kind", "synthetic", "--config", "not json"])
        #expect(code == 3)
        // Unreachable server: exit 5.
        (code, _) = try await runTributary(["source", "list", "--server", "http://127.0.0.1:1"], directory: dir)
        #expect(code == 5)
        #expect(try await server.terminate() == 0)
    }
}
