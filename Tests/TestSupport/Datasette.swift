import Foundation

/// A real upstream nobody here wrote: Datasette (PyPI), serving a SQLite file as a
/// paginated JSON API. Installed into a virtualenv outside the repository on first use
/// (`TRIBUTARY_DATASETTE` may name an existing executable instead).
public final class DatasetteServer: @unchecked Sendable {
    // @unchecked: `process` and `port` are set in init and never mutated afterwards.
    let process: ChildProcess
    public let port: Int
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// The `datasette` executable, installing it with pip when missing.
    public static func executable() throws -> String {
        if let path = ProcessInfo.processInfo.environment["TRIBUTARY_DATASETTE"] { return path }
        let binary = TestPython.venv + "/bin/datasette"
        if FileManager.default.isExecutableFile(atPath: binary) { return binary }
        try TestPython.install(["datasette"])
        return binary
    }

    /// Serves `database` (a SQLite file) on a free loopback port.
    public init(database: String, directory: TemporaryDirectory) async throws {
        let log = directory.file("datasette.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = try ChildProcess(try Self.executable(),
                                 ["serve", database, "--host", "127.0.0.1", "--port", "0", "--setting", "max_returned_rows", "1000"],
                                 output: log)
        process = p
        port = try await eventually(timeout: .seconds(60), every: .milliseconds(50)) { () -> Int? in
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            guard let range = text.range(of: "running on http://127.0.0.1:") else {
                if !p.isRunning { throw TimedOut(description: "datasette exited: \(text)") }
                return nil
            }
            return Int(text[range.upperBound...].prefix { $0.isNumber })
        }
    }

    /// SIGTERM, then SIGKILL if uvicorn is still draining connections after two seconds.
    public func stop() {
        guard process.isRunning else { return }
        process.signal(SIGTERM)
        for _ in 0..<40 where process.isRunning { usleep(50_000) }
        process.signal(SIGKILL)
        process.waitBlocking()
    }

    deinit { stop() }
}

/// The tests' Python virtualenv, outside the repository: real tools nobody here wrote
/// (Datasette as an upstream, `jsonschema` to check responses against openapi.yaml).
public enum TestPython {
    public static let venv = FileManager.default.homeDirectoryForCurrentUser.path + "/.cache/tributary-tests/datasette-venv"

    /// The virtualenv's python, with `modules` importable (installing `packages` with pip if not).
    public static func python(modules: [String], packages: [String]) throws -> String {
        let python = venv + "/bin/python"
        if FileManager.default.isExecutableFile(atPath: python),
           (try? ChildProcess(python, ["-c", "import " + modules.joined(separator: ", ")]).waitBlocking()) == 0 {
            return python
        }
        try install(packages)
        return python
    }

    static func run(_ executable: String, _ arguments: [String]) throws {
        let status = try ChildProcess(executable, arguments).waitBlocking()
        guard status == 0 else {
            throw TimedOut(description: "\(executable) \(arguments.joined(separator: " ")) exited \(status)")
        }
    }

    static func install(_ packages: [String]) throws {
        if !FileManager.default.isExecutableFile(atPath: venv + "/bin/pip") {
            try FileManager.default.createDirectory(atPath: venv, withIntermediateDirectories: true)
            try run("/usr/bin/env", ["python3", "-m", "venv", venv])
        }
        try run(venv + "/bin/pip", ["install", "--quiet"] + packages)
    }
}
