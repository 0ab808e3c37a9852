import Foundation
import Testing
import SyncCore
import TestSupport

/// The client commands against a real server process, with docs/api.md's exit statuses.
@Suite("Command-line client", .serialized)
struct CLITests {
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
