import Foundation
import Testing
import SyncCore
import SyncServer
import TestSupport

/// The real binary against hostile clients and mistyped configuration: connections that
/// never finish their headers, oversized headers, secrets in start-up errors, token lists.
@Suite("The binary against hostile clients and bad configuration")
struct HardeningProcessTests {
    /// Item 12: connections that send half a request line are closed after the idle timeout,
    /// never more are held than the limit, and a real client gets through meanwhile.
    @Test func halfOpenRequestsCannotStarveTheServer() async throws {
        let dir = try TemporaryDirectory("e2e-slowloris")
        defer { dir.remove() }
        let node = try await TributaryProcess(
            serve: ["--database", "sqlite:s.sqlite", "--max-connections", "16", "--idle-timeout", "1"], directory: dir)
        var stalled: [RawConnection] = []
        for _ in 0..<40 {
            let connection = try RawConnection(port: node.port)
            connection.send("GET /healthz HTTP/1.1\r\n")
            stalled.append(connection)
        }
        // The first ones are accepted and then closed for idling; the server keeps answering.
        let first = await stalled[0].readUntilClosed(timeout: .seconds(5))
        #expect(first.closed, "a connection that never finished its headers was held past the idle timeout")
        let started = ContinuousClock.now
        let health = try await eventually(timeout: .seconds(20), every: .milliseconds(100)) { () -> Int? in
            let status = try? await node.client.get("/healthz").status
            return status == 200 ? status : nil
        }
        #expect(health == 200)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(node.isRunning)
        #expect(try await node.terminate() == 0)
    }

    /// RFC 9112 §9.3: a request that does not keep the connection alive — HTTP/1.0 without
    /// `Connection: keep-alive`, or `Connection: close` in any case or list — is answered with
    /// `Connection: close` and the connection closes at once, not at the idle timeout (30 s);
    /// bytes pipelined after it are not read, and its own answer is still sent. A request that
    /// keeps it alive can be followed on the same connection.
    @Test func aRequestThatDoesNotKeepTheConnectionAliveClosesIt() async throws {
        let dir = try TemporaryDirectory("e2e-keepalive")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:k.sqlite"], directory: dir)
        for request in ["GET /healthz HTTP/1.0\r\n\r\n", "GET /v1/sources HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Close\r\n\r\n",
                        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: x-foo, close\r\n\r\n",
                        "GET /healthz HTTP/1.0\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n",
                        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\nGET /v1/sources HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"] {
            let connection = try RawConnection(port: node.port)
            connection.send(request)
            let started = ContinuousClock.now
            let answer = await connection.readUntilClosed(timeout: .seconds(10))
            #expect(answer.closed && ContinuousClock.now - started < .seconds(2), "\(request.debugDescription): held \(ContinuousClock.now - started)")
            #expect(answer.text.hasPrefix("HTTP/1.1 200 OK"), "\(request.debugDescription): \(answer.text.prefix(300))")
            #expect(answer.text.components(separatedBy: "HTTP/1.1 ").count == 2, "one answer: \(answer.text)")
            #expect(answer.text.lowercased().contains("connection: close"), "\(answer.text.prefix(300))")
        }
        // Kept alive: HTTP/1.1 by default, HTTP/1.0 when it asks; a second request is answered.
        for first in ["GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"] {
            let connection = try RawConnection(port: node.port)
            connection.send(first)
            let one = await connection.read(until: { $0.contains("{\"status\"") }, timeout: .seconds(5))
            #expect(one.hasPrefix("HTTP/1.1 200 OK") && !one.lowercased().contains("connection: close"), "\(first.debugDescription): \(one)")
            connection.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            let two = await connection.readUntilClosed(timeout: .seconds(5))
            #expect(two.closed && (one + two.text).components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(first.debugDescription): \(one + two.text)")
        }
        #expect(try await node.terminate() == 0)
    }

    /// RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with two, is a 400 and
    /// the connection closes; HTTP/1.0 needs none; the mark that carries the fault inside the
    /// server cannot be sent by a client. (They were answered 200, the first Host winning.)
    @Test func aMissingOrRepeatedHostIsA400() async throws {
        let dir = try TemporaryDirectory("e2e-host")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:h.sqlite"], directory: dir)
        for (request, status) in [
            ("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", "400"),
            ("GET /v1/sources HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n", "400"),
            ("GET /v1/sources HTTP/1.1\r\nHost: evil.example\r\nHost: 127.0.0.1\r\n\r\n", "400"),
            ("GET /healthz HTTP/1.0\r\n\r\n", "200"),
            ("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Tributary-Host-Fault: several\r\nConnection: close\r\n\r\n", "200"),
        ] {
            let connection = try RawConnection(port: node.port)
            connection.send(request)
            let answer = await connection.readUntilClosed(timeout: .seconds(10))
            #expect(answer.closed, "\(request.debugDescription): the connection stays open")
            #expect(answer.text.hasPrefix("HTTP/1.1 \(status)"), "\(request.debugDescription): \(answer.text.prefix(300))")
            if status == "400" { #expect(answer.text.contains("RFC 9112"), "\(answer.text)") }
        }
        #expect(node.isRunning)
        #expect(try await node.terminate() == 0)
    }

    /// A node that cannot bind its port stops before its workers claim anything: it used to
    /// claim a queued sync of the shared database, log `claim failed`, and exit, leaving the
    /// sync with an attempt spent (or to the rescuer).
    @Test func aNodeThatCannotBindItsPortClaimsNothing() async throws {
        let dir = try TemporaryDirectory("e2e-port-taken")
        defer { dir.remove() }
        let first = try await TributaryProcess(serve: ["--database", "sqlite:s.sqlite", "--workers", "0"], directory: dir)
        #expect(try await first.client.post("/v1/sources", #"{"name": "s", "kind": "synthetic", "config": {"records": 5}}"#).status == 201)
        #expect(try await first.client.post("/v1/sources/s/syncs").status == 202)
        #expect(try await first.terminate() == 0)
        let taken = try RawResponder(answer: "")
        defer { taken.stop() }
        for _ in 0..<3 {
            let (code, out) = try await runTributary(["serve", "--database", "sqlite:s.sqlite", "--port", "\(taken.port)", "--workers", "4"],
                                                     directory: dir)
            #expect(code != 0, "\(out)")
            #expect(!out.contains("claim failed"), "\(out)")
        }
        #expect(try await sqlite3(dir.file("s.sqlite"), "SELECT status || ':' || attempt FROM syncs") == "queued:0")
    }

    /// With `--log-format json` the reason a node cannot start is a JSON line like every other
    /// (level `critical`, the reason in `message`, no password), with the same exit code.
    @Test func withJSONLogsTheReasonANodeCannotStartIsJSON() async throws {
        let dir = try TemporaryDirectory("e2e-json-start")
        defer { dir.remove() }
        let busy = try RawResponder(answer: "")
        defer { busy.stop() }
        for (arguments, says) in [
            (["--port", "\(busy.port)", "--database", "sqlite:j.sqlite"], "already in use"),
            (["--port", "0", "--database", "postgres://u:Sup3rS3cret@127.0.0.1:1/db"], "cannot be reached"),
            (["--port", "0", "--database", "mysql://u:Sup3rS3cret@h/db"], "mysql"),
        ] {
            let (code, out) = try await runTributary(["serve", "--log-format", "json"] + arguments, directory: dir)
            #expect(code != 0, "\(arguments)")
            let lines = out.split(separator: "\n")
            let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(!lines.isEmpty && objects.count == lines.count, "not every line is JSON: \(out)")
            let reason = objects.first { $0["level"] as? String == "critical" }
            #expect((reason?["message"] as? String)?.contains(says) == true, "\(out)")
            #expect(!out.contains("Sup3rS3cret"), "\(out)")
        }
    }

    /// `LOG_LEVEL=debug` logs every request: method, route template (never the raw path or
    /// query), status, duration and the `request_id` returned.
    @Test func atDebugEveryRequestIsLoggedByItsRoute() async throws {
        let dir = try TemporaryDirectory("e2e-request-log")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:r.sqlite", "--log-format", "json"], directory: dir,
                                              environment: ["LOG_LEVEL": "debug"])
        let connection = try RawConnection(port: node.port)
        connection.send("GET /v1/sources/private-name?token=hunter2 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: trace-7\r\nConnection: close\r\n\r\n")
        _ = await connection.readUntilClosed(timeout: .seconds(5))
        #expect(try await node.client.post("/v1/sources", #"{"name": "x", "kind": "synthetic", "config": {"records": 1}}"#).status == 201)
        let served = try await eventually { () -> [JSONValue]? in
            let lines = node.log.split(separator: "\n").compactMap { try? parseJSON(Array($0.utf8)) }
                .filter { $0["message"] == .string("request served") }
            return lines.count >= 2 ? lines : nil
        }
        let first = try #require(served.first { $0["request_id"] == .string("trace-7") }, "\(served)")
        #expect(first["method"] == .string("GET") && first["route"] == .string("/v1/sources/{id}") && first["status"] == .string("404"), "\(first)")
        #expect(first["duration_ms"]?.stringValue.flatMap(Double.init) != nil, "\(first)")
        #expect(served.contains { $0["method"] == .string("POST") && $0["route"] == .string("/v1/sources") && $0["status"] == .string("201") })
        #expect(!node.log.contains("private-name") && !node.log.contains("hunter2"))
        #expect(try await node.terminate() == 0)
        // At the default level, no request is logged.
        let quiet = try await TributaryProcess(serve: ["--database", "sqlite:r.sqlite"], directory: dir, name: "quiet")
        #expect(try await quiet.client.get("/v1/sources").status == 200)
        #expect(try await quiet.terminate() == 0)
        #expect(!quiet.log.contains("request served"))
    }

    /// `--node-id` takes 1 to 64 of `A-Z a-z 0-9 . _ -` (it goes into URL paths, logs and metric
    /// labels); a node registered under another id by an older version can still be drained,
    /// because every route percent-decodes its path segments and the dashboard encodes them.
    @Test func nodeIDsAreCheckedAndEveryPathSegmentIsDecoded() async throws {
        let dir = try TemporaryDirectory("e2e-node-id")
        defer { dir.remove() }
        for bad in ["a b", "a/b", "a?b", "a#b", "a%b", "n\u{E9}", "", String(repeating: "n", count: 65), ".", ".."] {
            let (code, out) = try await runTributary(["serve", "--database", "sqlite:n.sqlite", "--node-id", bad], directory: dir)
            #expect(code == 3 && out.contains("--node-id"), "\(bad.debugDescription): \(code) \(out)")
        }
        let good = "Host-1.example_x" + String(repeating: "n", count: 48)
        let node = try await TributaryProcess(serve: ["--database", "sqlite:n.sqlite", "--node-id", good, "--workers", "1"], directory: dir)
        #expect(try await node.client.post("/v1/nodes/\(good)/drain").status == 200)
        #expect(try await node.client.post("/v1/nodes/\(good)/resume").status == 200)
        // An id no longer allowed, as an older version may have registered it.
        let t = Date().timeIntervalSince1970
        try await sqlite3(dir.file("n.sqlite"), "INSERT INTO nodes (id, role, workers, started_at, heartbeat_at) VALUES ('old n\u{E9}/1?#%', 'all', 1, \(t), \(t))")
        let encoded = "old%20n%C3%A9%2F1%3F%23%25"
        let drained = try await node.client.post("/v1/nodes/\(encoded)/drain")
        #expect(drained.status == 200 && drained.json["id"] == .string("old n\u{E9}/1?#%") && drained.json["draining"] == .bool(true), "\(drained.text)")
        #expect(try await node.client.get("/v1/nodes/old%zz").status == 404)
        let page = try await node.client.get("/nodes").text
        #expect(page.contains("data-url=\"/v1/nodes/\(encoded)/resume\""), "\(page)")
        // Every route decodes the same way: a source's name spelled with escapes finds it.
        #expect(try await node.client.post("/v1/sources", #"{"name": "crm", "kind": "synthetic", "config": {"records": 1}}"#).status == 201)
        #expect(try await node.client.get("/v1/sources/%63r%6D").json["name"] == .string("crm"))
        #expect(try await node.terminate() == 0)
    }

    /// Headers over the limit get a 431 problem with a request id, not a bare 400.
    @Test func oversizedHeadersAreA431Problem() async throws {
        let dir = try TemporaryDirectory("e2e-431")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:h.sqlite"], directory: dir)
        let connection = try RawConnection(port: node.port)
        connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 100_000))\r\n\r\n")
        let answer = await connection.readUntilClosed(timeout: .seconds(10))
        #expect(answer.text.hasPrefix("HTTP/1.1 431"), "\(answer.text.prefix(200))")
        #expect(answer.text.lowercased().contains("content-type: application/problem+json"))
        #expect(answer.text.lowercased().contains("x-request-id: req_"))
        #expect(answer.text.contains(#""code":"headers_too_large""#))
        #expect(answer.text.contains(#""request_id":"req_"#))
        #expect(try await node.client.get("/healthz").status == 200)
        #expect(try await node.terminate() == 0)
    }

    /// Item 18: the 409s a client expects (a name taken, a sync already active) are not logged as errors.
    @Test func expectedConflictsAreNotLoggedAsErrors() async throws {
        let dir = try TemporaryDirectory("e2e-409")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:c.sqlite", "--workers", "0"], directory: dir)
        let body = #"{"name": "dup", "kind": "synthetic", "config": {"records": 10}}"#
        #expect(try await node.client.post("/v1/sources", body).status == 201)
        #expect(try await node.client.post("/v1/sources", body).status == 409)
        #expect(try await node.client.post("/v1/sources/dup/syncs").status == 202)
        #expect(try await node.client.post("/v1/sources/dup/syncs").status == 409)
        #expect(try await node.terminate() == 0)
        let errors = node.log.split(separator: "\n").filter { $0.contains(" error ") || $0.contains("store error") }
        #expect(errors.isEmpty, "\(errors)")
    }

    /// Item 13: no start-up error echoes a password; a login that cannot succeed says why at once.
    @Test func startUpErrorsNameTheProblemAndNeverThePassword() async throws {
        let dir = try TemporaryDirectory("e2e-secrets")
        defer { dir.remove() }
        let (code1, out1) = try await runTributary(["serve", "--database", "postgress://app:Sup3rS3cret@127.0.0.1:5432/db"], directory: dir)
        #expect(code1 == 3)
        #expect(!out1.contains("Sup3rS3cret"), "\(out1)")
        #expect(out1.contains("postgress://"), "\(out1)")

        let server = try await PostgresCluster.shared().createDatabase("login")
        let hostPart = String(server[server.range(of: "@")!.upperBound...].prefix { $0 != "/" })
        for (url, says) in [
            ("postgres://nobody:Sup3rS3cret@\(hostPart)/postgres", "refuses user \"nobody\""),
            ("postgres://postgres:Sup3rS3cret@\(hostPart)/no_such_db", "database \"no_such_db\" does not exist"),
        ] {
            let started = ContinuousClock.now
            let (code, out) = try await runTributary(["serve", "--port", "0", "--database", url], directory: dir)
            #expect(code != 0)
            #expect(out.contains(says), "\(out)")
            #expect(!out.contains("Sup3rS3cret"), "\(out)")
            #expect(out.split(separator: "\n").count == 1, "\(out)")
            #expect(ContinuousClock.now - started < .seconds(4), "it retried what cannot succeed")
        }
    }

    /// Item 13: a token for two roles, an empty or malformed entry is refused, named by its
    /// place and never by its token; spaces around a token are not part of it.
    @Test(arguments: [
        (["--token", "admin:Zq9tok", "--token", "viewer:Zq9tok"], nil as String?, "--token #2 (viewer) repeats the token of --token #1"),
        ([], "admin:Zq9tok,viewer:Zq9tok", "TRIBUTARY_TOKENS entry 2 (viewer) repeats"),
        ([], "admin:Zq9tok,,viewer:other", "TRIBUTARY_TOKENS entry 2 is not ROLE:TOKEN"),
        ([], "admin:Zq9tok,admn:Zq9other", "TRIBUTARY_TOKENS entry 2: the role before the colon is neither admin nor viewer"),
        // Written the wrong way round, the part before the colon is the secret: never printed.
        (["--token", "Zq9secret:admin"], nil, "--token #1: the role before the colon is neither admin nor viewer (write ROLE:TOKEN)"),
        (["--token", "admin:"], nil, "--token #1 (admin) has an empty token"),
        // A digest that is not 64 hex digits; a token and its digest are one token.
        (["--token", "admin:sha256:Zq9abc"], nil, "--token #1 (admin): a sha256: token is the 64 hexadecimal digits"),
        (["--token", "admin:Zq9tok", "--token", "viewer:sha256:\(TokenDigest.of("Zq9tok").dropFirst(7).uppercased())"], nil,
         "--token #2 (viewer) repeats the token of --token #1"),
    ] as [([String], String?, String)])
    func badTokenListsAreRefusedByPlace(_ flags: [String], _ environment: String?, _ says: String) async throws {
        let dir = try TemporaryDirectory("e2e-tokens")
        defer { dir.remove() }
        let env = environment.map { ["TRIBUTARY_TOKENS": $0] } ?? [:]
        let (code, out) = try await runTributary(["serve", "--port", "0", "--database", "sqlite:t.sqlite"] + flags, directory: dir, environment: env)
        #expect(code == 3, "\(out)")
        #expect(out.contains(says), "\(out)")
        #expect(!out.contains("Zq9"), "\(out)")
    }

    @Test func spacesAroundATokenAreNotPartOfIt() async throws {
        let dir = try TemporaryDirectory("e2e-token-space")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:t.sqlite"], directory: dir,
                                              environment: ["TRIBUTARY_TOKENS": " admin : tok1 , viewer:tok2 ,"])
        #expect(try await APIClient(baseURL: node.baseURL, token: "tok1").get("/v1/sources").status == 200)
        #expect(try await APIClient(baseURL: node.baseURL, token: "tok2").get("/v1/sources").status == 200)
        #expect(try await APIClient(baseURL: node.baseURL, token: "tok2x").get("/v1/sources").status == 401)
        #expect(try await node.terminate() == 0)
    }

    /// A token configured as its SHA-256 (`sha256:<hex>`, any case, flag or environment)
    /// admits the token with its role; the digest itself is not a token.
    @Test func aTokenGivenAsItsDigestAdmitsTheTokenNotTheDigest() async throws {
        let dir = try TemporaryDirectory("e2e-token-digest")
        defer { dir.remove() }
        let admin = TokenDigest.of("Zq9-admin-secret")
        let viewer = TokenDigest.of("Zq9-viewer-secret")
        let node = try await TributaryProcess(serve: ["--database", "sqlite:t.sqlite", "--token", "admin:" + admin.uppercased().replacingOccurrences(of: "SHA256:", with: "sha256:")],
                                              directory: dir, environment: ["TRIBUTARY_TOKENS": "viewer:" + viewer])
        func status(_ token: String, creating: Bool = false) async throws -> Int {
            let client = APIClient(baseURL: node.baseURL, token: token)
            return creating ? try await client.post("/v1/sources", #"{"name": "d", "kind": "synthetic", "config": {"records": 1}}"#).status
                : try await client.get("/v1/sources").status
        }
        let created = try await status("Zq9-admin-secret", creating: true)
        #expect(created == 201, "\(created)")
        #expect(try await status("Zq9-viewer-secret") == 200)
        #expect(try await status("Zq9-viewer-secret", creating: true) == 403)
        for wrong in [admin, String(admin.dropFirst(7)), viewer, "Zq9-admin-secreT", ""] {
            #expect(try await status(wrong) == 401, "\(wrong)")
        }
        #expect(!node.log.contains("Zq9"), "\(node.log)")
        #expect(try await node.terminate() == 0)
    }
}

/// Roles, graceful node removal and the egress flags, on the real binary.
@Suite("The binary's roles and flags", .serialized)
struct RoleAndFlagProcessTests {
    @Test func aWorkerRunsWhatAnAPINodeQueuesAndLeavesTheClusterOnSIGTERM() async throws {
        let dir = try TemporaryDirectory("e2e-roles")
        defer { dir.remove() }
        let db = ["--database", "sqlite:roles.sqlite"]
        let api = try await TributaryProcess(serve: db + ["--role", "api", "--workers", "4", "--node-id", "api-1"], directory: dir, name: "api")
        let worker = try await TributaryProcess(serve: db + ["--role", "worker", "--node-id", "worker-1"], directory: dir, name: "worker")
        try await createSlowSource(api.client, records: 50, pageSize: 10, delayMs: 0)
        let id = try #require(try await api.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        let done = try await eventually(timeout: .seconds(30), every: .milliseconds(50)) { () -> JSONValue? in
            let s = try await sync(api.client, id)
            return s["status"]?.stringValue == "completed" ? s : nil
        }
        // `--role api` runs no sync even with --workers 4: the worker node ran it.
        #expect(done["attempts"]?.arrayValue?.map { $0["node"] } == [.string("worker-1")])
        let nodes = try await api.client.get("/v1/health").json["checks"]?.arrayValue?.first { $0["name"] == .string("workers") }?["nodes"]
        let roles = Dictionary(uniqueKeysWithValues: (nodes?.arrayValue ?? []).map { ($0["id"]?.stringValue ?? "", $0["role"]?.stringValue ?? "") })
        #expect(roles == ["api-1": "api", "worker-1": "worker"], "\(roles)")
        #expect(try await worker.terminate() == 0)
        // A node that stops gracefully removes itself; the other stays.
        #expect(try await sqlite3(dir.file("roles.sqlite"), "SELECT group_concat(id) FROM nodes") == "api-1")
        #expect(try await api.terminate() == 0)
    }

    @Test func egressFlagsDenyAndAllow() async throws {
        let dir = try TemporaryDirectory("e2e-egress")
        defer { dir.remove() }
        let body = #"{"name": "up", "kind": "http-json", "config": {"url": "http://127.0.0.1:9/x", "primary_key": "id"}}"#
        let denied = try await TributaryProcess(serve: ["--database", "sqlite:d.sqlite", "--egress-deny", "127.0.0.0/8"], directory: dir, name: "deny")
        let refused = try await denied.client.post("/v1/sources", body)
        #expect(refused.status == 403, "\(refused.text)")
        #expect(refused.json["code"] == .string("forbidden"))
        #expect(try await denied.terminate() == 0)
        let allowed = try await TributaryProcess(
            serve: ["--database", "sqlite:a.sqlite", "--egress-deny", "127.0.0.0/8", "--egress-allow", "127.0.0.1/32"], directory: dir, name: "allow")
        #expect(try await allowed.client.post("/v1/sources", body).status == 201)
        #expect(try await allowed.terminate() == 0)
        let (code, out) = try await runTributary(["serve", "--port", "0", "--database", "sqlite:b.sqlite", "--egress-deny", "not a rule!"], directory: dir)
        #expect(code == 3)
        #expect(out.contains("--egress-deny"), "\(out)")
    }
}
