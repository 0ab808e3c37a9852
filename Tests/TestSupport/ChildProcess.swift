import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` and reaped with `waitpid(WNOHANG)`.
///
/// Why not Foundation's `Process`: on Linux it learns that a child ended when a socket
/// the child holds is closed. A child spawned at the same moment elsewhere in the test
/// process (a PostgreSQL server started by `pg_ctl`, a second node) can inherit that
/// socket and keep it open for its whole life, so `isRunning` stayed true for a
/// `tributary` that had printed its error and exited (seen in CI: "did not exit within
/// 30 s"). Here the exit is read from the kernel, and every spawned child gets only
/// descriptors 0–2 (`closefrom(3)`), so no child can hold another's pipes or sockets.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: `status` is guarded by `lock`; everything else is immutable.
    public let pid: pid_t
    private let lock = NSLock()
    private var status: Int32?

    /// Starts `executable` with `arguments`. Standard output and error go to the file at
    /// `output` (appended) or to /dev/null; standard input is /dev/null.
    public init(_ executable: String, _ arguments: [String], directory: String? = nil,
                environment: [String: String]? = nil, output: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output ?? "/dev/null", O_WRONLY | O_APPEND | O_CREAT, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        guard Self.addCloseFrom(&actions, 3) == 0, Self.addChdir(&actions, directory ?? ".") == 0 else {
            throw ClusterError("posix_spawn_file_actions refused \(directory ?? ".")")
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal handling in the child: the test process may ignore SIGPIPE.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))

        let env = environment ?? ProcessInfo.processInfo.environment
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw ClusterError("could not start \(executable): \(String(cString: strerror(result)))")
        }
        pid = child
    }

    // glibc has both (2.29, 2.34), but Swift's Glibc module does not declare these GNU
    // extensions, so they are looked up by name.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias Chdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addCloseFrom: CloseFrom = symbol("posix_spawn_file_actions_addclosefrom_np")
    private static let addChdir: Chdir = symbol("posix_spawn_file_actions_addchdir_np")

    private static func symbol<F>(_ name: String) -> F {
        guard let address = dlsym(nil, name) else {  // nil: RTLD_DEFAULT
            fatalError("\(name) is missing: glibc 2.34 or newer is needed")
        }
        return unsafeBitCast(address, to: F.self)
    }

    /// The raw wait status once the child has ended, else nil. Reaps it on first sight.
    private var waitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if status == nil {
            var raw: Int32 = 0
            var reaped: pid_t
            repeat { reaped = waitpid(pid, &raw, WNOHANG) } while reaped == -1 && errno == EINTR
            if reaped == pid { status = raw }
        }
        return status
    }

    public var isRunning: Bool { waitStatus == nil }

    /// The exit code, or 128 + the signal number for a child killed by a signal.
    public var terminationStatus: Int32 {
        guard let raw = waitStatus else { return -1 }
        return Self.decode(raw)
    }

    static func decode(_ raw: Int32) -> Int32 {
        raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Polls until the child ends (never blocks a cooperative thread); throws after `timeout`.
    @discardableResult
    public func wait(timeout: Duration) async throws -> Int32 {
        _ = try await eventually(timeout: timeout, every: .milliseconds(10)) { self.isRunning ? nil : true }
        return terminationStatus
    }

    /// Blocks the calling thread until the child ends. For threads off the cooperative pool.
    @discardableResult
    public func waitBlocking() -> Int32 {
        while isRunning { usleep(5_000) }
        return terminationStatus
    }

    deinit {
        // Reap what is ours; a child still running is left alone (a server's reaper, say).
        _ = waitStatus
    }
}
