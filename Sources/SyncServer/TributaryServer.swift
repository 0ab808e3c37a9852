import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import Logging
import ServiceLifecycle
import Synchronization
import SyncConnectors
import SyncStore

/// Builds the Hummingbird application of a node: the one API, its middleware, and
/// the engine's services (workers, lease rescuer) in one service group.
public struct TributaryServer: Sendable {
    public let env: APIEnvironment
    public let configuration: ServerConfiguration
    public let routes = RouteTable()
    /// The node's reader for server-sent event streams.
    public let events: SyncEventHub
    private let shuttingDown = ShutdownFlag()

    public init(env: APIEnvironment, configuration: ServerConfiguration) {
        self.env = env
        self.configuration = configuration
        events = SyncEventHub(store: env.store, keepAlive: .milliseconds(Int64(configuration.eventKeepAliveSeconds * 1000)),
                              maxStreams: configuration.maxEventStreams)
    }

    /// The router with every route and middleware.
    public func buildRouter() -> Router<TributaryRequestContext> {
        // HEAD answers every GET route as GET would, without the body (RFC 9110 §9.3.2).
        let router = Router(context: TributaryRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: MetricsMiddleware(metrics: env.metrics))
        router.add(middleware: ProblemMiddleware(routes: routes, maxBodyBytes: env.maxBodyBytes))
        router.add(middleware: CrossSiteGuard(boundHost: configuration.host, allowedHosts: configuration.allowedHosts))
        router.add(middleware: AuthMiddleware(tokens: configuration.tokens))
        HealthRoutes(env: env, isShuttingDown: { shuttingDown.value }).register(on: router, table: routes)
        SourceRoutes(env: env).register(on: router, table: routes)
        CredentialRoutes(env: env).register(on: router, table: routes)
        SyncRoutes(env: env).register(on: router, table: routes)
        RecordRoutes(env: env).register(on: router, table: routes)
        ChangeRoutes(env: env).register(on: router, table: routes)
        HistoryRoutes(env: env).register(on: router, table: routes)
        MetricsRoutes(env: env).register(on: router, table: routes)
        EventRoutes(env: env, hub: events).register(on: router, table: routes)
        DashboardRoutes(env: env, tokensConfigured: !configuration.tokens.isEmpty).register(on: router, table: routes)
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
            services: services + [ShutdownWatcher(flag: flag, events: events)],
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }
}
