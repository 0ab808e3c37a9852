import Foundation
import Testing
import SyncCore
import TestSupport

/// `tributary credential …` against a real server: secrets come from files, never from the
/// command line, and no command prints one.
@Suite("Credential commands")
struct CredentialCLITests {
    @Test func addListShowRotateAndDeleteNeverPrintASecret() async throws {
        let dir = try TemporaryDirectory("e2e-cli-cred")
        defer { dir.remove() }
        let upstream = FixtureUpstream(items: 3)
        try await upstream.start()
        defer { Task { await upstream.stop() } }
        let server = try await TributaryProcess(serve: ["--database", "sqlite:c.sqlite", "--workers", "1"], directory: dir)
        let env = ["TRIBUTARY_URL": server.baseURL]
        let first = "tok-first-\(UUID().uuidString)", second = "tok-second-\(UUID().uuidString)"
        try (first + "\n").write(toFile: dir.file("first"), atomically: true, encoding: .utf8)
        try second.write(toFile: dir.file("second"), atomically: true, encoding: .utf8)
        var printed = ""

        var (code, out) = try await runTributary(["credential", "add", "gh", "--type", "bearer", "--secret", "token=@" + dir.file("first")],
                                                 directory: dir, environment: env)
        printed += out
        #expect(code == 0 && out.contains("created credential gh"), "\(out)")
        // The secret itself on the command line is refused, before anything is sent.
        (code, out) = try await runTributary(["credential", "add", "x", "--type", "bearer", "--secret", "token=plain"], directory: dir, environment: env)
        #expect(code == 3, "\(out)")
        (code, out) = try await runTributary(["source", "add", "s", "--kind", "http-json", "--credential", "gh", "--config",
                                              #"{"url": "\#(upstream.baseURL)/none", "records_path": "/rows", "primary_key": "id"}"#],
                                             directory: dir, environment: env)
        #expect(code == 0, "\(out)")
        (code, out) = try await runTributary(["sync", "start", "s", "--wait"], directory: dir, environment: env)
        #expect(code == 0, "\(out)")
        #expect(upstream.requests(path: "/none").last?.headers["authorization"] == "Bearer " + first)

        (code, out) = try await runTributary(["credential", "list"], directory: dir, environment: env)
        printed += out
        #expect(code == 0 && out.contains("gh") && out.contains("bearer") && out.contains("active"), "\(out)")
        (code, out) = try await runTributary(["credential", "show", "gh"], directory: dir, environment: env)
        printed += out
        #expect(code == 0 && out.contains("\"***\""), "\(out)")

        (code, out) = try await runTributary(["credential", "rotate-secret", "gh", "token", "--from", "@" + dir.file("second")], directory: dir, environment: env)
        printed += out
        #expect(code == 0, "\(out)")
        (code, _) = try await runTributary(["sync", "start", "s", "--wait"], directory: dir, environment: env)
        #expect(upstream.requests(path: "/none").last?.headers["authorization"] == "Bearer " + second)

        // In use: 409, exit status 4 with the server's detail.
        (code, out) = try await runTributary(["credential", "delete", "gh"], directory: dir, environment: env)
        #expect(code == 4 && out.contains("source"), "\(out)")
        (code, _) = try await runTributary(["source", "remove", "s"], directory: dir, environment: env)
        (code, out) = try await runTributary(["credential", "delete", "gh"], directory: dir, environment: env)
        #expect(code == 0, "\(out)")

        // Inline secrets in --config, a file of two lines, a field that is no secret: refused.
        (code, out) = try await runTributary(["credential", "add", "y", "--type", "bearer", "--config", #"{"token": "inline-secret-9"}"#], directory: dir, environment: env)
        #expect(code == 3 && !out.contains("inline-secret-9"), "\(out)")
        try "line-one\nline-two\n".write(toFile: dir.file("two"), atomically: true, encoding: .utf8)
        (code, out) = try await runTributary(["credential", "add", "z", "--type", "bearer", "--secret", "token=@" + dir.file("two")], directory: dir, environment: env)
        #expect(code == 3 && out.contains("more than one line"), "\(out)")
        try "crlf-secret-1\r\n".write(toFile: dir.file("crlf"), atomically: true, encoding: .utf8)
        (code, out) = try await runTributary(["credential", "add", "w", "--type", "basic", "--config", #"{"username": "u"}"#, "--secret", "password=@" + dir.file("crlf")],
                                             directory: dir, environment: env)
        #expect(code == 0, "\(out)")
        (code, out) = try await runTributary(["credential", "rotate-secret", "w", "username", "--from", "@" + dir.file("crlf")], directory: dir, environment: env)
        #expect(code == 3 && out.contains("not a secret"), "\(out)")

        #expect(!printed.contains(first) && !printed.contains(second))
        #expect(!server.log.contains(first) && !server.log.contains(second))
    }
}
