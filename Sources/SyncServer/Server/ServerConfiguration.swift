import Foundation
import SyncConnectors

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
    /// The most server-sent event streams open at once; past it a new one is a `503`.
    public var maxEventStreams: Int
    /// How often an event stream with nothing to say sends a keep-alive comment.
    public var eventKeepAliveSeconds: Double
    /// Host names requests may name besides loopback's and the bound address (`--allow-host`).
    public var allowedHosts: [String] = []

    public init(host: String = "127.0.0.1", port: Int = 8080, tokens: [String: TokenRole] = [:], maxBodyBytes: Int = 1 << 20,
                maxConnections: Int = ServerConfiguration.defaultMaxConnections, idleTimeoutSeconds: Double = 30,
                requestReadTimeoutSeconds: Double = 60, maxEventStreams: Int = 1000, eventKeepAliveSeconds: Double = 15) {
        self.maxEventStreams = maxEventStreams
        self.eventKeepAliveSeconds = eventKeepAliveSeconds
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

    /// Whether `host` is loopback: decided by what it resolves to (every address in
    /// 127.0.0.0/8 or `::1`), not by its spelling (`127.attacker.example` is a name that may
    /// resolve anywhere). A name that does not resolve is not loopback.
    public var bindsLoopbackOnly: Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let addresses = EgressPolicy.parseAddress(bare).map { [$0] } ?? EgressPolicy.resolveBlocking(bare, port: port)
        return !addresses.isEmpty && addresses.allSatisfy(EgressPolicy.isLoopback)
    }

    /// Refuses configurations that would expose an unauthenticated server (docs/api.md, "Authentication").
    public func validate() throws(ConfigurationError) {
        if tokens.isEmpty && !bindsLoopbackOnly {
            throw ConfigurationError("refusing to bind \(host) without tokens: configure --token admin:SECRET or bind 127.0.0.1")
        }
        if !(0...65535).contains(port) { throw ConfigurationError("port \(port) is out of range") }
        if maxConnections < 1 { throw ConfigurationError("the connection limit must be at least 1") }
        // A second at least: 1e-9 closed every connection before its request was read.
        if !(idleTimeoutSeconds >= 1 && idleTimeoutSeconds <= 3600) { throw ConfigurationError("the idle timeout must be between 1 and 3600 seconds") }
        if !(requestReadTimeoutSeconds >= 1 && requestReadTimeoutSeconds <= 3600) {
            throw ConfigurationError("the request read timeout must be between 1 and 3600 seconds")
        }
    }
}

/// A configuration problem, reported as one line.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
