import Foundation
import Testing
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
        ([], "admin:Zq9tok,admn:Zq9other", "TRIBUTARY_TOKENS entry 2: role \"admn\""),
        (["--token", "admin:"], nil, "--token #1 (admin) has an empty token"),
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
}
