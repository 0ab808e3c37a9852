import Foundation
import Testing
import SyncCore
import TestSupport

/// Requests that once killed a node, sent to the real binary: the process must answer them
/// and go on answering (a trap in process would end the test runner, not fail a test).
@Suite("Hostile requests against the real binary")
struct HostileRequestProcessTests {
    /// Opens `GET /v1/events` with `Last-Event-ID: value` and reads what it sends within a second.
    func events(port: Int, lastEventID: String) async throws -> (head: String, events: [ServerSentEvent]) {
        let connection = try RawConnection(port: port)
        connection.send("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: \(lastEventID)\r\n\r\n")
        let text = await connection.read(until: { $0.contains(": keep-alive") || $0.contains("event: ") }, timeout: .seconds(5))
        try await Task.sleep(for: .milliseconds(300))
        connection.hangUp()
        return (text.components(separatedBy: "\r\n").first ?? "", ServerSentEvent.parse(text))
    }

    /// `Last-Event-ID` of `GET /v1/events` is milliseconds since 1970: values that are not a
    /// usable id (non-finite, exponents, past 2^64, signs) are ignored, a far-future id replays
    /// nothing, and the node survives every one of them.
    @Test func anUnusableLastEventIDIsIgnoredAndTheNodeLives() async throws {
        let dir = try TemporaryDirectory("e2e-last-event-id")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:e.sqlite", "--workers", "1"], directory: dir)
        #expect(try await node.client.post("/v1/sources", #"{"name": "s", "kind": "synthetic", "config": {"records": 5}}"#).status == 201)
        let id = try #require(try await node.client.post("/v1/sources/s/syncs").json["id"]?.stringValue)
        _ = try await eventually(timeout: .seconds(20)) { () -> Bool? in
            try await node.client.get("/v1/syncs/\(id)").json["status"] == .string("completed") ? true : nil
        }
        // An id from before the sync replays it.
        let (_, replay) = try await events(port: node.port, lastEventID: "1000")
        #expect(replay.contains { $0.data["id"] == .string(id) }, "\(replay)")
        for hostile in ["inf", "-inf", "nan", "1e20", "1e308", "18446744073709551616", "99999999999999999999999",
                        "9007199254740993", "281474976710656", "-1", "+5", "0x10", "1.5", "", "\u{FF11}\u{FF12}"] {
            let (head, events) = try await events(port: node.port, lastEventID: hostile)
            #expect(head == "HTTP/1.1 200 OK", "\(hostile): \(head)")
            // Ignored, or the far future: the completed sync is not replayed.
            #expect(!events.contains { $0.data["id"] == .string(id) }, "\(hostile) replayed \(events)")
            #expect(node.process.isRunning, "the node died on Last-Event-ID: \(hostile)")
        }
        #expect(try await node.client.get("/healthz").status == 200)
        #expect(try await node.terminate() == 0)
    }

    /// Sends one request as written and returns the status line and the body.
    func raw(_ port: Int, _ request: String) async throws -> (status: String, body: String) {
        let connection = try RawConnection(port: port)
        connection.send(request)
        let (text, _) = await connection.readUntilClosed(timeout: .seconds(10))
        let parts = text.components(separatedBy: "\r\n\r\n")
        return (text.components(separatedBy: "\r\n").first ?? "", parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    func request(_ method: String, _ path: String, host: String, headers: [String] = [], body: String? = nil) -> String {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n"
        for header in headers { text += header + "\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        return text + "\r\n" + (body ?? "")
    }

    /// A server without tokens trusts its loopback port, and every web page in a browser on
    /// the same machine reaches it: writes that a page may send without asking (a form, a
    /// `text/plain` or untyped body), writes that say they come from another site (`Origin`,
    /// `Sec-Fetch-Site`), and requests naming a host the server does not answer to (a
    /// DNS-rebinding page) are refused and change nothing; the server's own pages, the CLI
    /// and plain clients go on working.
    @Test func aPageOnAnotherSiteCanNeitherWriteNorRead() async throws {
        let dir = try TemporaryDirectory("e2e-cross-site")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:x.sqlite", "--allow-host", "tributary.internal"], directory: dir)
        let port = node.port, here = "127.0.0.1:\(port)"
        let create = #"{"name": "victim", "kind": "synthetic", "config": {"records": 5}}"#
        let refused: [(String, String, [String], String?, String)] = [
            ("another origin", here, ["Origin: http://evil.example", "Content-Type: application/json"], create, "403"),
            ("an opaque origin", here, ["Origin: null", "Content-Type: application/json"], create, "403"),
            ("another port", here, ["Origin: http://127.0.0.1:1", "Content-Type: application/json"], create, "403"),
            ("cross-site fetch", here, ["Sec-Fetch-Site: cross-site", "Content-Type: application/json"], create, "403"),
            ("same-site fetch", here, ["Sec-Fetch-Site: same-site", "Content-Type: application/json"], create, "403"),
            ("a text/plain body", here, ["Content-Type: text/plain"], create, "415"),
            ("a form", here, ["Content-Type: application/x-www-form-urlencoded"], "a=1", "415"),
            ("a multipart form", here, ["Content-Type: multipart/form-data; boundary=x"], "--x--", "415"),
            ("an untyped body", here, [], create, "415"),
            ("a rebound name", "evil.example:\(port)", ["Content-Type: application/json"], create, "403"),
            ("a rebound name without port", "attacker.test", ["Content-Type: application/json"], create, "403"),
        ]
        for (what, host, headers, body, status) in refused {
            let (line, text) = try await raw(port, request("POST", "/v1/sources", host: host, headers: headers, body: body))
            #expect(line.hasPrefix("HTTP/1.1 \(status)"), "\(what): \(line) \(text)")
            #expect(text.contains("\"code\""), "\(what): a problem body: \(text)")
        }
        // A trigger without a body, from a form on another site, is refused too.
        let (trigger, _) = try await raw(port, request("POST", "/v1/sources/victim/syncs", host: here, headers: ["Origin: http://evil.example", "Content-Type: application/x-www-form-urlencoded"], body: ""))
        #expect(trigger.hasPrefix("HTTP/1.1 403") || trigger.hasPrefix("HTTP/1.1 415"), "\(trigger)")
        // Reads through a rebound name are refused as well; loopback names and --allow-host answer.
        #expect(try await raw(port, request("GET", "/v1/sources", host: "evil.example:\(port)")).status.hasPrefix("HTTP/1.1 403"))
        for host in [here, "localhost:\(port)", "127.0.0.2:\(port)", "[::1]:\(port)", "tributary.internal:\(port)", "LOCALHOST."] {
            #expect(try await raw(port, request("GET", "/v1/sources", host: host)).status.hasPrefix("HTTP/1.1 200"), "\(host)")
        }
        #expect(try await node.client.get("/v1/sources/victim").status == 404, "a refused write created the source")
        // The server's own page (same origin), a plain client, and JSON with a charset are fine.
        let (own, ownBody) = try await raw(port, request("POST", "/v1/sources", host: here,
            headers: ["Origin: http://\(here)", "Sec-Fetch-Site: same-origin", "Content-Type: application/json; charset=utf-8"], body: create))
        #expect(own.hasPrefix("HTTP/1.1 201"), "\(own) \(ownBody)")
        #expect(try await node.client.post("/v1/sources/victim/syncs").status == 202)
        #expect(try await node.terminate() == 0)
    }

    /// `--host` is loopback by what it resolves to, not by its spelling: `127.attacker.invalid`
    /// (a name that may resolve anywhere) is refused without tokens; `localhost` and
    /// `127.0.0.1` are loopback.
    @Test func aHostThatOnlyLooksLikeLoopbackNeedsTokens() async throws {
        let dir = try TemporaryDirectory("e2e-host-spelling")
        defer { dir.remove() }
        for host in ["127.attacker.invalid", "127.0.0.1.nip.invalid", "localhost.attacker.invalid"] {
            let (code, out) = try await runTributary(["serve", "--port", "0", "--host", host, "--database", "sqlite:h.sqlite"], directory: dir)
            #expect(code == 3, "\(host): \(out)")
            #expect(out.contains("without tokens"), "\(host): \(out)")
        }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:h.sqlite", "--host", "localhost"], directory: dir)
        #expect(try await node.client.get("/healthz").status == 200)
        #expect(try await node.terminate() == 0)
    }
}
