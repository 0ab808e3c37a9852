import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import SyncConnectors
import SyncEngine
import SyncStore

/// Configuration of the HTTP side of a node.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Bearer tokens and their roles; empty means no authentication (loopback only).
    public var tokens: [String: TokenRole]
    public var maxBodyBytes: Int

    public init(host: String = "127.0.0.1", port: Int = 8080, tokens: [String: TokenRole] = [:], maxBodyBytes: Int = 1 << 20) {
        self.host = host
        self.port = port
        self.tokens = tokens
        self.maxBodyBytes = maxBodyBytes
    }

    /// Whether `host` is a loopback address (or name).
    public var bindsLoopbackOnly: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Refuses configurations that would expose an unauthenticated server (API.md, "Authentication").
    public func validate() throws(ConfigurationError) {
        if tokens.isEmpty && !bindsLoopbackOnly {
            throw ConfigurationError("refusing to bind \(host) without tokens: configure --token admin:SECRET or bind 127.0.0.1")
        }
        if !(0...65535).contains(port) { throw ConfigurationError("port \(port) is out of range") }
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
        let router = Router(context: TributaryRequestContext.self)
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
        return Application(
            router: buildRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "tributary"),
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
