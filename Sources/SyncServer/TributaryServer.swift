import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import Logging
import ServiceLifecycle
import Synchronization
import SyncConnectors
import SyncStore

/// Configuration of the HTTP side of a node.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Bearer tokens and their roles; empty means no authentication (loopback only).
    public var tokens: [String: TokenRole]
    public var maxBodyBytes: Int
    /// The most connections held open at once; past it the server stops accepting until one
    /// closes (they wait in the listen backlog), so it never runs out of file descriptors.
    public var maxConnections: Int
    /// A connection with no complete request for this long is closed: it bounds the time to
    /// send a request's headers and the keep-alive time between requests.
    public var idleTimeoutSeconds: Double
    /// A request's body must arrive within this long of its headers.
    public var requestReadTimeoutSeconds: Double

    public init(host: String = "127.0.0.1", port: Int = 8080, tokens: [String: TokenRole] = [:], maxBodyBytes: Int = 1 << 20,
                maxConnections: Int = ServerConfiguration.defaultMaxConnections, idleTimeoutSeconds: Double = 30,
                requestReadTimeoutSeconds: Double = 60) {
        self.host = host
        self.port = port
        self.tokens = tokens
        self.maxBodyBytes = maxBodyBytes
        self.maxConnections = maxConnections
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.requestReadTimeoutSeconds = requestReadTimeoutSeconds
    }

    /// 1,024 connections, or fewer where the process may open fewer files: a quarter of the
    /// descriptors stay for the database, the upstreams and the log.
    public static var defaultMaxConnections: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        let files = min(UInt64(limit.rlim_cur), 1 << 20)
        return max(8, min(1024, Int(files * 3 / 4) - 16))
    }

    /// Whether `host` is a loopback address (or name).
    public var bindsLoopbackOnly: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Refuses configurations that would expose an unauthenticated server (docs/api.md, "Authentication").
    public func validate() throws(ConfigurationError) {
        if tokens.isEmpty && !bindsLoopbackOnly {
            throw ConfigurationError("refusing to bind \(host) without tokens: configure --token admin:SECRET or bind 127.0.0.1")
        }
        if !(0...65535).contains(port) { throw ConfigurationError("port \(port) is out of range") }
        if maxConnections < 1 { throw ConfigurationError("the connection limit must be at least 1") }
        if !(idleTimeoutSeconds > 0 && idleTimeoutSeconds <= 3600) { throw ConfigurationError("the idle timeout must be between 0 and 3600 seconds") }
        if !(requestReadTimeoutSeconds > 0 && requestReadTimeoutSeconds <= 3600) {
            throw ConfigurationError("the request read timeout must be between 0 and 3600 seconds")
        }
    }
}

/// A configuration problem, reported as one line.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Builds the Hummingbird application of a node: the one API, its middleware, and
/// the engine's services (workers, lease rescuer) in one service group.
public struct TributaryServer: Sendable {
    public let env: APIEnvironment
    public let configuration: ServerConfiguration
    public let routes = RouteTable()
    private let shuttingDown = ShutdownFlag()

    public init(env: APIEnvironment, configuration: ServerConfiguration) {
        self.env = env
        self.configuration = configuration
    }

    /// The router with every route and middleware.
    public func buildRouter() -> Router<TributaryRequestContext> {
        // HEAD answers every GET route as GET would, without the body (RFC 9110 §9.3.2).
        let router = Router(context: TributaryRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: ProblemMiddleware(routes: routes, maxBodyBytes: env.maxBodyBytes))
        router.add(middleware: AuthMiddleware(tokens: configuration.tokens))
        HealthRoutes(env: env, isShuttingDown: { shuttingDown.value }).register(on: router, table: routes)
        SourceRoutes(env: env).register(on: router, table: routes)
        SyncRoutes(env: env).register(on: router, table: routes)
        RecordRoutes(env: env).register(on: router, table: routes)
        return router
    }

    /// The application, with `services` (workers, rescuer, …) run beside the HTTP server.
    public func buildApplication(services: [any Service], logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol {
        let flag = shuttingDown
        let readTimeout = TimeAmount.milliseconds(Int64(configuration.requestReadTimeoutSeconds * 1000))
        let channel = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuard(requestReadTimeout: readTimeout)],
            idleTimeout: .milliseconds(Int64(configuration.idleTimeoutSeconds * 1000)))
        return Application(
            router: buildRouter(),
            server: .http1(configuration: channel),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "tributary",
                availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections, logger: logger)),
            services: services + [ShutdownWatcher(flag: flag)],
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }
}

/// Set once graceful shutdown begins, so `/readyz` answers 503 while the node drains.
final class ShutdownFlag: Sendable {
    private let state = Mutex(false)
    var value: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}

struct ShutdownWatcher: Service {
    let flag: ShutdownFlag
    func run() async throws {
        try? await gracefulShutdown()
        flag.set()
    }
}
