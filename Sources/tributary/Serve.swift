import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import SyncConnectors
import SyncCore
import SyncEngine
import SyncNode
import SyncServer
import SyncStore

/// `tributary serve`: the API, the workers and the lease rescuer in one process.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the API server and the sync workers.")

    enum Role: String, ExpressibleByArgument, CaseIterable {
        case all, api, worker
    }

    @Option(help: "Address to bind. Without tokens only loopback is allowed.")
    var host = "127.0.0.1"
    @Option(name: .customLong("allow-host"), help: "A host name requests may name in Host besides loopback's and --host's (repeatable, comma-separated).")
    var allowHost: [String] = []
    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080
    @Option(help: "sqlite:PATH (default sqlite:tributary.sqlite) or postgres://… (env TRIBUTARY_DATABASE_URL).")
    var database: String?
    @Option(help: "How many syncs this process runs at once (0: none).")
    var workers = 4
    @Option(name: .customLong("node-id"), help: "This node's name (default: host name and pid).")
    var nodeID: String?
    @Option(name: .customLong("lease-seconds"), help: "How long a sync's lease lasts without a heartbeat.")
    var leaseSeconds: Double = 30
    @Option(help: "all, api (no workers) or worker.")
    var role: Role = .all
    @Option(name: .customLong("token"), help: "ROLE:TOKEN, ROLE admin or viewer (repeatable; env TRIBUTARY_TOKENS).")
    var tokens: [String] = []
    @Option(name: .customLong("max-body-bytes"), help: "Largest accepted request body.")
    var maxBodyBytes = 1 << 20
    @Option(name: .customLong("max-connections"), help: "Most connections held open at once (default: 1024, or 3/4 of the open-file limit).")
    var maxConnections: Int?
    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may go without a complete request (headers included) before it is closed.")
    var idleTimeout: Double = 30
    @Option(name: .customLong("read-timeout"), help: "Seconds a request's body may take to arrive after its headers.")
    var readTimeout: Double = 60
    @Option(name: .customLong("webhook-timeout"), help: "Seconds one webhook POST may take, connect to answer (default 10).")
    var webhookTimeout: Double = 10
    @Option(name: .customLong("egress-allow"), help: "Host or CIDR sources may reach even if denied (repeatable, comma-separated).")
    var egressAllow: [String] = []
    @Option(name: .customLong("egress-deny"), help: "Host or CIDR sources may not reach, beyond link-local and metadata addresses (repeatable).")
    var egressDeny: [String] = []
    @Option(name: .customLong("max-event-streams"), help: "Most server-sent event streams open at once (past it: 503).")
    var maxEventStreams = 1000
    @Option(name: .customLong("log-format"), help: "text or json (one object per line, with request_id, sync_id, source and attempt).")
    var logFormat: LogFormat = .text
    @Option(name: .customLong("retention-days"), help: "Finished syncs older than this many days are pruned (records stay).")
    var retentionDays: Double = 30
    @Option(name: .customLong("retention-keep"), help: "Finished syncs kept per source whatever their age.")
    var retentionKeep = 20
    @Option(name: .customLong("prune-interval"), help: "Seconds between this node's prunes, at least 1 (0: never on its own).")
    var pruneInterval: Double = 3600

    @OptionGroup var secretKeys: SecretKeyOptions

    func validate() throws {
        if let nodeID, !EngineConfiguration.isValidNodeID(nodeID) {
            throw ValidationError("--node-id must be 1 to 64 of A-Z a-z 0-9 . _ - (it appears in URL paths, logs and metric labels)")
        }
        guard workers >= 0 && workers <= 256 else { throw ValidationError("--workers must be between 0 and 256") }
        guard leaseSeconds >= 1 && leaseSeconds <= 3600 else { throw ValidationError("--lease-seconds must be between 1 and 3600") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard maxEventStreams >= 0 && maxEventStreams <= 100_000 else { throw ValidationError("--max-event-streams must be between 0 and 100000") }
        guard (1024...(64 << 20)).contains(maxBodyBytes) else { throw ValidationError("--max-body-bytes must be from 1024 to 67108864 (64 MiB)") }
        guard retentionDays.isFinite && retentionDays >= 0 && retentionDays <= 3650 else { throw ValidationError("--retention-days must be between 0 and 3650") }
        guard retentionKeep >= 0 && retentionKeep <= 1_000_000 else { throw ValidationError("--retention-keep must be between 0 and 1000000") }
        // 0 turns it off; anything else is a second at least (1e-9 ran the prune in a busy loop).
        guard pruneInterval == 0 || (pruneInterval.isFinite && pruneInterval >= 1 && pruneInterval <= 86_400 * 7) else {
            throw ValidationError("--prune-interval must be 0 (off) or between 1 and 604800 seconds")
        }
        guard webhookTimeout.isFinite && webhookTimeout >= 0.1 && webhookTimeout <= 300 else {
            throw ValidationError("--webhook-timeout must be between 0.1 and 300 seconds")
        }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        logFormat.bootstrap(level: environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info)
        let logger = Logger(label: "tributary")
        do {
            try await serve(environment: environment, logger: logger)
        } catch where logFormat == .json {
            // Every line of a JSON-logging process is JSON, the reason it could not start too.
            let (message, code) = Main.failure(error)
            logger.critical("\(message)")
            throw ReportedFailure(exitCode: code)
        }
    }

    func serve(environment: [String: String], logger: Logger) async throws {

        let tokenMap = try TokenSpecs.parse(flags: tokens, environment: environment["TRIBUTARY_TOKENS"])
        var serverConfiguration = ServerConfiguration(
            host: host, port: port, tokens: tokenMap, maxBodyBytes: maxBodyBytes,
            maxConnections: maxConnections ?? ServerConfiguration.defaultMaxConnections,
            idleTimeoutSeconds: idleTimeout, requestReadTimeoutSeconds: readTimeout, maxEventStreams: maxEventStreams)
        serverConfiguration.allowedHosts = allowHost.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        do {
            try serverConfiguration.validate()
        } catch {
            throw CommandFailure(error.description, exitCode: 3)
        }

        let url = try DatabaseURL.parse(database ?? environment[DatabaseURL.environmentKey] ?? DatabaseURL.defaultValue)
        let store = try url.open(keyring: try secretKeys.keyring(environment: environment))
        try await url.migrate(store)
        try await SecretKeyOptions.check(store, logger: logger)

        let egress = EgressPolicy(allow: try Self.parseRules(egressAllow, flag: "--egress-allow"),
                                  deny: try Self.parseRules(egressDeny, flag: "--egress-deny"))
        let prometheus = PrometheusCollectorRegistry()
        let metrics = TributaryMetrics(prometheus: prometheus)
        let upstream = UpstreamClient(egress: egress, metrics: metrics)
        let kinds = SourceKindRegistry.standard(client: upstream)
        let engineConfiguration = EngineConfiguration(
            workers: role == .api ? 0 : workers, nodeID: nodeID ?? EngineConfiguration.defaultNodeID(), leaseSeconds: leaseSeconds,
            retention: RetentionPolicy(olderThanSeconds: retentionDays * 86_400, keepLastPerSource: retentionKeep),
            pruneInterval: pruneInterval > 0 ? .milliseconds(Int64(pruneInterval * 1000)) : nil,
            webhooks: WebhookPolicy(timeout: webhookTimeout))
        let node = TributaryNode(
            store: store, kinds: kinds, engine: engineConfiguration,
            server: serverConfiguration, role: role.rawValue, prometheus: prometheus, metrics: metrics, webhookClient: upstream)
        let host = self.host
        let summary = "database \(url.redacted), role \(role.rawValue), workers \(engineConfiguration.workers), node \(engineConfiguration.nodeID)"
        let app = node.application(logger: logger) { port in
            logger.info("tributary listening on http://\(host):\(port) (\(summary))")
        }
        do {
            try await app.runService()
        } catch {
            try? await upstream.shutdown()
            throw CommandFailure("server stopped: \(Self.oneLine(error))")
        }
        try? await upstream.shutdown()
        await store.close()
        logger.info("tributary stopped")
    }

    static func parseRules(_ specs: [String], flag: String) throws -> [EgressPolicy.Rule] {
        try specs.flatMap { $0.split(separator: ",") }.map { raw in
            guard let rule = EgressPolicy.Rule(String(raw)) else {
                throw CommandFailure("\(flag) \(raw) is neither a host name nor a CIDR block", exitCode: 3)
            }
            return rule
        }
    }

    static func oneLine(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("Address already in use") || text.contains("EADDRINUSE") || text.contains("errno: 98") {
            return "the port is already in use (\(text.prefix(120)))"
        }
        return String(text.split(separator: "\n").first ?? "")
    }
}
