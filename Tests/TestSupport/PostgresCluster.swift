import Dispatch
import Foundation

/// A throwaway PostgreSQL server for tests: `initdb` into a temp dir (as the `postgres`
/// user when running as root, which `initdb` refuses), listening on a free loopback port,
/// stopped and removed after the test process exits (a small reaper watches our pid).
///
/// `TRIBUTARY_TEST_POSTGRES_URL` (a URL of a role allowed to create databases) replaces
/// the shared cluster; tests that restart the server always start a private one. There is
/// no skipping: if neither works, the test fails with the reason.
public final class PostgresCluster: Sendable {
    /// `postgres://USER@127.0.0.1:PORT` (no database).
    public let serverURL: String
    public let port: Int
    let dataDirectory: String?
    let binDirectory: String?

    /// The cluster shared by every test of this process (started once).
    public static func shared() async throws -> PostgresCluster {
        try await sharedCluster.value
    }

    private static let sharedCluster = Task<PostgresCluster, any Error> {
        if let url = ProcessInfo.processInfo.environment["TRIBUTARY_TEST_POSTGRES_URL"], !url.isEmpty {
            return PostgresCluster(externalURL: url)
        }
        return try await PostgresCluster.start()
    }

    private init(externalURL: String) {
        var base = externalURL
        if let slash = base.range(of: "/", options: .backwards), base[..<slash.lowerBound].contains("@") { base = String(base[..<slash.lowerBound]) }
        serverURL = base
        port = URLComponents(string: externalURL)?.port ?? 5432
        dataDirectory = nil
        binDirectory = nil
    }

    private init(serverURL: String, port: Int, dataDirectory: String, binDirectory: String) {
        self.serverURL = serverURL
        self.port = port
        self.dataDirectory = dataDirectory
        self.binDirectory = binDirectory
    }

    /// Starts a private cluster (tests that stop and restart the server use their own).
    public static func start() async throws -> PostgresCluster {
        try await offThePool { try startBlocking() }
    }

    static func startBlocking() throws -> PostgresCluster {
        let bin = try binDirectory()
        let directory = try TemporaryDirectory("tributary-pg")
        let data = directory.file("data")
        let asRoot = getuid() == 0
        if asRoot { try run("/bin/chown", ["-R", "postgres:postgres", directory.path]) }
        try run(bin + "/initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"], asPostgres: asRoot)
        // The port is found free and then released: another process may take it before the
        // server binds it, so a failed start is tried again on a fresh port.
        var started: PostgresCluster?
        for attempt in 1...5 where started == nil {
            let port = try freePort()
            let candidate = PostgresCluster(serverURL: "postgres://postgres@127.0.0.1:\(port)", port: port, dataDirectory: data, binDirectory: bin)
            do {
                try candidate.startServerBlocking()
                started = candidate
            } catch where attempt < 5 {
                continue
            }
        }
        guard let cluster = started else { throw ClusterError("PostgreSQL did not start") }
        // The reaper: once this test process is gone, stop the server and delete its files.
        let reaper = """
            while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done
            \(asRoot ? "runuser -u postgres -- " : "")\(bin)/pg_ctl -D \(data) -m immediate stop >/dev/null 2>&1
            rm -rf \(directory.path)
            """
        _ = try ChildProcess("/usr/bin/setsid", ["/bin/sh", "-c", reaper])
        return cluster
    }

    /// Starts (or restarts) the server process of a private cluster.
    public func startServer() async throws {
        try await Self.offThePool { try self.startServerBlocking() }
    }

    func startServerBlocking() throws {
        guard let data = dataDirectory, let bin = binDirectory else { throw ClusterError("an external server cannot be started") }
        let options = "-p \(port) -k \(data) -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
        try Self.run(bin + "/pg_ctl", ["-D", data, "-o", options, "-l", data + "/server.log", "-w", "-t", "60", "start"], asPostgres: getuid() == 0)
    }

    /// Stops the server at once (`immediate`: like a crash, every connection drops).
    public func stopServer() async throws {
        try await Self.offThePool { try self.stopServerBlocking() }
    }

    func stopServerBlocking() throws {
        guard let data = dataDirectory, let bin = binDirectory else { throw ClusterError("an external server cannot be stopped") }
        try Self.run(bin + "/pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"], asPostgres: getuid() == 0)
    }

    /// Creates an empty database and returns its URL.
    ///
    /// One at a time: `CREATE DATABASE` copies the template (megabytes of writes in the
    /// server and the kernel); fifty at once, as the parameterised suites ask at start-up,
    /// kept both cores in system time for seconds and stalled every timing in the process.
    public func createDatabase(_ prefix: String = "t") async throws -> String {
        let serverURL = serverURL
        return try await withCheckedThrowingContinuation { continuation in
            Self.creation.async { continuation.resume(with: Result { try Self.createDatabase(prefix, serverURL: serverURL) }) }
        }
    }

    private static let creation = DispatchQueue(label: "tributary-tests.create-database")

    static func createDatabase(_ prefix: String, serverURL: String) throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        try Self.run("/usr/bin/env", ["psql", serverURL + "/postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", "CREATE DATABASE \(name)"])
        return serverURL + "/" + name
    }

    /// Runs SQL on a database with psql (stopping at the first error); throws with psql's output on failure.
    @discardableResult
    public static func psql(_ url: String, _ sql: String) async throws -> String {
        try await offThePool { try run("/usr/bin/env", ["psql", url, "-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql]) }
    }

    /// The whole database as `pg_dump` writes it (plain SQL, data included).
    public static func dump(_ url: String) async throws -> String {
        try await offThePool { try run("/usr/bin/env", ["pg_dump", "--no-owner", url]) }
    }

    /// Runs blocking work (spawning and waiting for commands) on a Dispatch thread: blocking
    /// one of the few cooperative threads stalled every other test of the process for seconds.
    static func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// The folder of `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest /usr/lib/postgresql/N/bin.
    static func binDirectory() throws -> String {
        if let out = try? output("/usr/bin/env", ["pg_config", "--bindir"]), FileManager.default.isExecutableFile(atPath: out + "/initdb") {
            return out
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        for version in versions.reversed() where FileManager.default.isExecutableFile(atPath: "\(root)/\(version)/bin/initdb") {
            return "\(root)/\(version)/bin"
        }
        throw ClusterError("PostgreSQL server binaries not found (install postgresql, or set TRIBUTARY_TEST_POSTGRES_URL)")
    }

    /// A loopback port nobody listens on (bound, then released).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClusterError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw ClusterError("could not find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], asPostgres: Bool = false) throws -> String {
        let (status, text) = try execute(asPostgres ? "/usr/sbin/runuser" : executable,
                                         asPostgres ? ["-u", "postgres", "--", executable] + arguments : arguments)
        guard status == 0 else { throw ClusterError("\(executable) \(arguments.joined(separator: " ")) failed (\(status)): \(text)") }
        return text
    }

    static func output(_ executable: String, _ arguments: [String]) throws -> String {
        try run(executable, arguments).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a command to its end (blocking this thread), output and errors captured.
    static func execute(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let outputPath = NSTemporaryDirectory() + "tributary-cmd-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let status = try ChildProcess(executable, arguments, output: outputPath).waitBlocking()
        return (status, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }
}

public struct ClusterError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
