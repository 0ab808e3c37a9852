import Foundation
import Testing
import SyncCore
import TestSupport

/// Upstreams, receivers and URLs that once stopped a node (a trap in AsyncHTTPClient or in an
/// integer conversion), tried against the real binary: the sync or delivery fails with a
/// clear error, the node goes on, and so does the command line.
@Suite("Hostile upstreams against the real binary")
struct HostileUpstreamProcessTests {
    func waitTerminal(_ node: TributaryProcess, _ id: String) async throws -> JSONValue {
        try await eventually(timeout: .seconds(30)) { () -> JSONValue? in
            let s = try await node.client.get("/v1/syncs/\(id)").json
            return ["completed", "failed"].contains(s["status"]?.stringValue ?? "") ? s : nil
        }
    }

    /// The longest key a record may have (2,048 UTF-8 bytes) pages through `next_cursor` and is
    /// fetched by its percent-encoded key over real HTTP, whatever its characters (a key of
    /// `%` triples when encoded, one of emoji is 512 characters); one byte more is a record
    /// error, so no stored key makes a cursor or path the server itself refuses (a 60 KB key
    /// once made a `next_cursor` answered `431`).
    @Test func theLongestKeyPagesAndIsFetchedOverHTTP() async throws {
        let dir = try TemporaryDirectory("e2e-long-keys")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:s.sqlite", "--workers", "1"], directory: dir)
        let keys = [String(repeating: "%", count: 2048), String(repeating: "\u{1F600}", count: 512), String(repeating: "a", count: 2047),
                    String(repeating: "/", count: 2048), String(repeating: "\u{E9}", count: 1024)]
        let tooLong = [String(repeating: "b", count: 2049), String(repeating: "\u{1F600}", count: 512) + "c"]
        let rows = (keys + tooLong).enumerated().map { #"{"id": "\#($0.element)", "n": \#($0.offset)}"# }.joined(separator: ", ")
        let body = #"{"rows": [\#(rows)]}"#
        let upstream = try RawResponder(answer: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        defer { upstream.stop() }
        #expect(try await node.client.post("/v1/sources", #"""
            {"name": "long", "kind": "http-json", "config": {"url": "\#(upstream.baseURL)/p", "records_path": "/rows", "primary_key": "id"}}
            """#).status == 201)
        let id = try #require(try await node.client.post("/v1/sources/long/syncs").json["id"]?.stringValue)
        let done = try await waitTerminal(node, id)
        #expect(done["result"]?["records_created"] == .number(Double(keys.count)), "\(done)")
        #expect(done["result"]?["records_failed"] == .number(Double(tooLong.count)), "\(done)")
        var seen: [String] = []
        var path = "/v1/sources/long/records?limit=1"
        for _ in 0...keys.count {
            let page = try await node.client.get(path)
            try #require(page.status == 200, "\(path.utf8.count) bytes: \(page.status) \(page.text.prefix(200))")
            seen += page.json["items"]?.arrayValue?.compactMap { $0["key"]?.stringValue } ?? []
            guard let cursor = page.json["next_cursor"]?.stringValue else { break }
            path = "/v1/sources/long/records?limit=1&after=" + (cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        }
        #expect(Set(seen) == Set(keys) && seen.count == keys.count, "\(seen.map(\.utf8.count))")
        for (n, key) in keys.enumerated() {
            let record = try await node.client.get("/v1/sources/long/records/" + (key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""))
            #expect(record.status == 200 && record.json["data"]?["n"] == .number(Double(n)), "key of \(key.utf8.count) bytes: \(record.status)")
        }
        #expect(try await node.terminate() == 0)
    }

    /// A receiver's status line is its answer: one that sends `200` at once and then its small
    /// body a byte a second, past `--webhook-timeout`, has the delivery delivered, tried once
    /// (waiting for the body recorded "the receiver did not answer" and POSTed it again).
    @Test func aReceiverWhoseBodyIsSlowHasAnsweredWithItsStatus() async throws {
        let dir = try TemporaryDirectory("e2e-slow-receiver")
        defer { dir.remove() }
        let listener = Process()
        let output = Pipe()
        // The system's python3 itself, not a shim that forks it: terminate() must reach it. It
        // also ends on its own after a minute, and writes nothing to the test's stderr.
        listener.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        listener.arguments = ["-c", """
            import socket, threading, time
            threading.Timer(60, lambda: __import__('os')._exit(0)).start()
            s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(16)
            print(s.getsockname()[1], flush=True)
            def serve(c):
                data = b''
                while b'\\r\\n\\r\\n' not in data:
                    chunk = c.recv(65536)
                    if not chunk: return
                    data += chunk
                c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 30\\r\\n\\r\\n')
                for _ in range(30):
                    time.sleep(1)
                    try: c.sendall(b'x')
                    except OSError: return
            while True:
                c, _ = s.accept()
                threading.Thread(target=serve, args=(c,), daemon=True).start()
            """]
        listener.standardOutput = output
        listener.standardError = FileHandle.nullDevice
        try listener.run()
        defer { if listener.isRunning { listener.terminate() } }
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        let port = try #require(Int(line.trimmingCharacters(in: .whitespacesAndNewlines)))
        let node = try await TributaryProcess(serve: ["--database", "sqlite:w.sqlite", "--workers", "1", "--webhook-timeout", "2"], directory: dir)
        #expect(try await node.client.post("/v1/sources", #"""
            {"name": "slow", "kind": "synthetic", "config": {"records": 1}, "notify": [{"url": "http://127.0.0.1:\#(port)/hook"}]}
            """#).status == 201)
        let id = try #require(try await node.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        let item = try await eventually(timeout: .seconds(30)) { () -> JSONValue? in
            let item = try await node.client.get("/v1/syncs/\(id)/deliveries").json["items"]?.arrayValue?.first
            let ended = item?["status"] != nil && item?["status"] != .string("pending")
            let failedTry = item?["last_error"].map { $0 != .null } ?? false
            return ended || failedTry ? item : nil
        }
        #expect(item["status"] == .string("delivered") && item["response_status"] == .number(200) && item["attempts"] == .number(1), "\(item)")
        #expect(try await node.terminate() == 0)
    }

    /// A status under 100 or past 599 (with a body, without one, chunked), or headers no
    /// parser takes, from an upstream and from a webhook receiver: the sync fails
    /// `invalid_response` (not a retryable `upstream_unavailable`), the delivery records a
    /// failed try, and the node answers throughout.
    @Test func aStatusOutsideTheHTTPRangeFailsTheSyncNotTheNode() async throws {
        let dir = try TemporaryDirectory("e2e-status-line")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:s.sqlite", "--workers", "1", "--webhook-timeout", "10"], directory: dir)
        let answers = ["HTTP/1.1 000 X\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.1 099 X\r\n\r\n",
                       "HTTP/1.1 000 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                       "HTTP/1.1 050 X\r\nContent-Length: 12\r\n\r\n{\"rows\": []}", "HTTP/1.1 600 X\r\nContent-Length: 2\r\n\r\n{}",
                       "HTTP/1.1 1000 X\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.1 \tX\r\nContent-Length: 2\r\n\r\n{}",
                       // Headers no parser takes: past its limit, folded, holding a NUL; a length that is no number.
                       "HTTP/1.1 200 OK\r\nLink: <" + String(repeating: "a", count: 200_000) + ">; rel=\"next\"\r\nContent-Length: 2\r\n\r\n{}",
                       "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 2\r\n\r\n{}",
                       "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n{}"]
        var responders: [RawResponder] = []
        defer { for r in responders { r.stop() } }
        for (i, answer) in answers.enumerated() {
            let upstream = try RawResponder(answer: answer)
            let receiver = try RawResponder(answer: answer)
            responders += [upstream, receiver]
            let body = #"""
                {"name": "s\#(i)", "kind": "http-json", "config": {"url": "\#(upstream.baseURL)/p", "records_path": "/rows", "primary_key": "id"},
                 "retry": {"max_attempts": 1}, "notify": [{"url": "\#(receiver.baseURL)/hook", "events": ["failed"]}]}
                """#
            #expect(try await node.client.post("/v1/sources", body).status == 201)
            let id = try #require(try await node.client.post("/v1/sources/s\(i)/syncs").json["id"]?.stringValue)
            let done = try await waitTerminal(node, id)
            #expect(done["status"] == .string("failed"), "\(answer.debugDescription): \(done)")
            #expect(done["error"]?["code"] == .string("invalid_response"), "\(answer.debugDescription): \(done["error"] ?? .null)")
            #expect(upstream.requests >= 1)
            // A try that got the receiver's answer (under load a first try may time out; the
            // next one comes 10 s later).
            let tried = try await eventually(timeout: .seconds(45)) { () -> JSONValue? in
                let item = try await node.client.get("/v1/syncs/\(id)/deliveries").json["items"]?.arrayValue?.first
                let readIt = item?["response_status"]?.doubleValue != nil || item?["last_error"]?.stringValue?.contains("not HTTP") == true
                return readIt ? item : nil
            }
            // The receiver's answer was read and is a failed try, retried (its status is recorded
            // when it has one that reads as a number of three digits).
            #expect(tried["status"] == .string("pending"), "\(tried)")
            #expect(receiver.requests >= 1)
            let health = try await node.client.get("/healthz")
            #expect(node.isRunning && health.status == 200, "\(answer.debugDescription)")
        }
        #expect(try await node.terminate() == 0)
    }

    /// A port past 65535 in a source's URL or a webhook's is refused at the door (422); named by
    /// an upstream's next link or redirect it fails the sync; the node goes on.
    @Test func aPortPast65535IsRefusedOrFailsTheSyncNeverTheNode() async throws {
        let dir = try TemporaryDirectory("e2e-port")
        defer { dir.remove() }
        let fixture = FixtureUpstream(items: 3)
        try await fixture.start()
        defer { Task { await fixture.stop() } }
        fixture.script { request in
            switch request.path {
            case "/next": .json(#"{"rows": [{"id": 1}], "next": "http://127.0.0.1:99999/p2"}"#)
            case "/link": FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", "<http://127.0.0.1:65536/p2>; rel=\"next\"")], body: #"[{"id": 1}]"#)
            case "/link-plus": FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", "<http://127.0.0.1:+80/p2>; rel=\"next\"")], body: #"[{"id": 1}]"#)
            case "/link-space": FixtureUpstream.Scripted(headers: [("Content-Type", "application/json"), ("Link", "<http://127.0.0.1: 80/p2>; rel=\"next\"")], body: #"[{"id": 1}]"#)
            default: FixtureUpstream.Scripted(status: 302, headers: [("Location", "http://127.0.0.1:99999/x")], body: "")
            }
        }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:p.sqlite", "--workers", "1"], directory: dir)
        for port in ["99999", "65536", "0", "18446744073709551617"] {
            let source = #"{"name": "bad", "kind": "http-json", "config": {"url": "http://127.0.0.1:\#(port)/x", "records_path": "/rows", "primary_key": "id"}}"#
            let refused = try await node.client.post("/v1/sources", source)
            #expect(refused.status == 422 && refused.json["errors"]?.arrayValue?.first?["field"] == .string("config.url"), "\(port): \(refused.text)")
            let hook = #"{"name": "hooked", "kind": "synthetic", "config": {"records": 1}, "notify": [{"url": "http://127.0.0.1:\#(port)/hook"}]}"#
            let refusedHook = try await node.client.post("/v1/sources", hook)
            #expect(refusedHook.status == 422 && refusedHook.json["errors"]?.arrayValue?.first?["field"] == .string("notify[0].url"), "\(port): \(refusedHook.text)")
        }
        for (name, config, code) in [
            ("next", #"{"url": "\#(fixture.baseURL)/s/next", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "next_url", "path": "/next"}}"#, "invalid_response"),
            ("link", #"{"url": "\#(fixture.baseURL)/s/link", "records_path": "", "primary_key": "id", "pagination": {"type": "link_header"}}"#, "invalid_response"),
            ("redirect", #"{"url": "\#(fixture.baseURL)/s/redirect", "records_path": "/rows", "primary_key": "id"}"#, "upstream_client_error"),
            // A Link target that is not a URL at all is an error too, not "no next page" (which
            // completed a full sync early and deleted what it did not reach).
            ("link-plus", #"{"url": "\#(fixture.baseURL)/s/link-plus", "records_path": "", "primary_key": "id", "pagination": {"type": "link_header"}}"#, "invalid_response"),
            ("link-space", #"{"url": "\#(fixture.baseURL)/s/link-space", "records_path": "", "primary_key": "id", "pagination": {"type": "link_header"}}"#, "invalid_response"),
        ] {
            #expect(try await node.client.post("/v1/sources", #"{"name": "\#(name)", "kind": "http-json", "config": \#(config), "retry": {"max_attempts": 1}}"#).status == 201)
            let id = try #require(try await node.client.post("/v1/sources/\(name)/syncs").json["id"]?.stringValue)
            let done = try await waitTerminal(node, id)
            #expect(done["status"] == .string("failed") && done["error"]?["code"] == .string(code), "\(name): \(done["error"] ?? .null)")
            #expect(node.isRunning)
        }
        let health = try await node.client.get("/healthz")
        #expect(health.status == 200)
        #expect(try await node.terminate() == 0)
    }

    /// The command line refuses a server URL it cannot use (exit 3), and never prints a secret
    /// the URL carries, in its query or its userinfo, parsable or not.
    @Test func theClientRefusesABadServerURLAndPrintsNoSecretOfIt() async throws {
        let dir = try TemporaryDirectory("e2e-cli-url")
        defer { dir.remove() }
        for url in ["http://127.0.0.1:99999", "http://u:p@127.0.0.1:65536", "ftp://127.0.0.1:8080", "http://user:PaSsWd99@[zz"] {
            let (code, out) = try await runTributary(["health", "--server", url], directory: dir, environment: [:])
            #expect(code == 3, "\(url): \(code) \(out)")
            #expect(!out.contains("PaSsWd99"), "\(url): \(out)")
        }
        let closed = try RawResponder(answer: "")
        closed.stop()
        for url in ["http://127.0.0.1:\(closed.port)/?access_token=PaSsWd99", "http://127.0.0.1:\(closed.port)/?token=PaSsWd99&x=1",
                    "http://alice:PaSsWd99@127.0.0.1:\(closed.port)"] {
            let (code, out) = try await runTributary(["health", "--server", url], directory: dir, environment: [:])
            #expect(code == 5, "\(url): \(code) \(out)")
            #expect(!out.contains("PaSsWd99"), "\(out)")
        }
        // A server that answers `HTTP/1.1 000`: a clear failure, not a trap (exit 132).
        let odd = try RawResponder(answer: "HTTP/1.1 000 X\r\nContent-Length: 2\r\n\r\n{}")
        defer { odd.stop() }
        let (code, out) = try await runTributary(["health", "--server", odd.baseURL], directory: dir, environment: [:])
        #expect(code == 5, "\(code) \(out)")
        // A database port past 65535 is refused before any connection (it was cut to 16 bits,
        // and the password went to the port that made).
        let (wrapped, wrapText) = try await runTributary(["migrate", "--database", "postgres://u:PaSsWd99@127.0.0.1:\(closed.port + 65536)/db"],
                                                         directory: dir, environment: [:])
        #expect(wrapped == 3 && wrapText.contains("port") && !wrapText.contains("PaSsWd99"), "\(wrapped): \(wrapText)")
        // serve: a password in the database URL's query is not printed either.
        let (served, text) = try await runTributary(["serve", "--port", "0", "--database", "postgres://u@127.0.0.1:\(closed.port)/db?password=PaSsWd99"],
                                                  directory: dir, environment: [:])
        #expect(served != 0 && !text.contains("PaSsWd99"), "\(served): \(text)")
    }

    /// Flags that would make the node spin or trap are refused before it starts: a prune
    /// interval under a second (1e-9 ran the prune in a busy loop) among them.
    @Test(arguments: [["--prune-interval", "1e-9"], ["--prune-interval", "0.5"], ["--prune-interval", "nan"], ["--prune-interval", "-1"],
                      ["--lease-seconds", "inf"], ["--webhook-timeout", "1e-9"], ["--retention-days", "1e400"],
                      ["--idle-timeout", "1e-9"], ["--read-timeout", "1e-9"]])
    func serveRefusesFlagsThatWouldSpinOrTrap(_ flag: [String]) async throws {
        let dir = try TemporaryDirectory("e2e-flags")
        defer { dir.remove() }
        let (code, out) = try await runTributary(["serve", "--port", "0", "--database", "sqlite:f.sqlite"] + flag, directory: dir)
        let named = out.contains(flag[0]) || out.contains(flag[0].dropFirst(2).replacingOccurrences(of: "-", with: " "))
        #expect(code != 0 && named, "\(flag): \(code) \(out)")
        #expect(!out.contains("listening on"), "\(flag)")
    }
}
