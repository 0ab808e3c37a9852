import Foundation

/// The real `tributary` binary, run as a child process for end-to-end tests.
///
/// Output goes to a log file next to the database; `start` waits for the
/// "listening on" line and reads the port from it (the server binds port 0).
public final class TributaryProcess: @unchecked Sendable {
    // @unchecked: `process` is set once in init and only read after; ChildProcess is
    // thread-safe.
    public let process: ChildProcess
    public let logPath: String
    public let port: Int
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// The built binary: `TRIBUTARY_BINARY`, else next to the test bundle.
    public static var binaryPath: String {
        if let path = ProcessInfo.processInfo.environment["TRIBUTARY_BINARY"] { return path }
        let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundleDir, bundleDir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("tributary").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return ".build/debug/tributary"
    }

    /// Starts `tributary serve` with `arguments` (plus `--port 0` unless given) and waits until it listens.
    public init(serve arguments: [String], directory: TemporaryDirectory, name: String = "node", environment: [String: String] = [:]) async throws {
        logPath = directory.file("\(name)-\(UUID().uuidString.prefix(6)).log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        var args = ["serve"] + arguments
        if !arguments.contains("--port") { args += ["--port", "0"] }
        let process = try Self.launch(args, directory: directory, environment: environment, output: logPath)
        self.process = process
        let path = logPath
        do {
            port = try await eventually(timeout: .seconds(60), every: .milliseconds(20)) { () -> Int? in
                guard process.isRunning else { throw ProcessExited(log: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "") }
                return Self.listeningPort(in: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
            }
        } catch {
            process.signal(SIGKILL)
            throw error
        }
    }

    /// Why the binary must not be used: it is older than a file under `Sources/` (a test
    /// would silently run yesterday's code), or missing. Checked once per test process.
    static let staleness: String? = {
        let binary = binaryPath
        guard let built = (try? FileManager.default.attributesOfItem(atPath: binary))?[.modificationDate] as? Date else {
            return "the tributary binary is missing at \(binary): run swift build"
        }
        // This file is Tests/TestSupport/TributaryProcess.swift; the package root is two levels up.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let sources = root.appendingPathComponent("Sources")
        guard let walker = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: [.contentModificationDateKey]) else { return nil }
        for case let file as URL in walker {
            guard let changed = try? file.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate else { continue }
            if changed > built.addingTimeInterval(1) {
                return "the tributary binary at \(binary) is older than \(file.path): run swift build before the end-to-end tests"
                    + " (if that file only got a new timestamp, touch the binary)"
            }
        }
        return nil
    }()

    /// Starts the binary with a clean Tributary environment plus `environment`, output to `output`.
    public static func launch(_ arguments: [String], directory: TemporaryDirectory, environment: [String: String], output: String) throws -> ChildProcess {
        if let stale = staleness { throw ClusterError(stale) }
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "TRIBUTARY_DATABASE_URL")
        env.removeValue(forKey: "TRIBUTARY_TOKENS")
        env.removeValue(forKey: "TRIBUTARY_SECRET_KEY")
        for (k, v) in environment { env[k] = v }
        return try ChildProcess(binaryPath, arguments, directory: directory.path, environment: env, output: output)
    }

    static func listeningPort(in log: String) -> Int? {
        guard let range = log.range(of: "tributary listening on http://") else { return nil }
        let rest = log[range.upperBound...]
        guard let colon = rest.firstIndex(of: ":") else { return nil }
        let digits = rest[rest.index(after: colon)...].prefix { $0.isNumber }
        return Int(digits)
    }

    public var client: APIClient { APIClient(baseURL: baseURL) }
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    public var isRunning: Bool { process.isRunning }

    /// SIGKILL: the process dies at whatever instruction it is on.
    public func kill() async {
        process.signal(SIGKILL)
        while process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
    }

    /// SIGTERM, then waits for the exit and returns its status.
    public func terminate(timeout: Duration = .seconds(20)) async throws -> Int32 {
        process.signal(SIGTERM)
        return try await waitForExit(timeout: timeout)
    }

    public func waitForExit(timeout: Duration = .seconds(20)) async throws -> Int32 {
        try await process.wait(timeout: timeout)
    }

    deinit {
        process.signal(SIGKILL)
        process.waitBlocking()  // SIGKILL: milliseconds
    }
}

public struct ProcessExited: Error, CustomStringConvertible {
    public var log: String
    public var description: String { "tributary exited early; log:\n\(log)" }
}

/// Runs the binary to completion with `arguments`; returns (exit status, combined output).
public func runTributary(_ arguments: [String], directory: TemporaryDirectory, environment: [String: String] = [:]) async throws -> (Int32, String) {
    let outPath = directory.file("run-\(UUID().uuidString.prefix(6)).out")
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    let process = try TributaryProcess.launch(arguments, directory: directory, environment: environment, output: outPath)
    do {
        try await process.wait(timeout: .seconds(30))
    } catch {
        // Say which command hung and what it had printed, then end it.
        let printed = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        process.signal(SIGKILL)
        throw TimedOut(description: "tributary \(arguments.joined(separator: " ")) did not exit within 30 s; it printed: \(printed.suffix(2000))")
    }
    return (process.terminationStatus, (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "")
}
