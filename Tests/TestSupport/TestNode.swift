import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SyncConnectors
import SyncCore
import SyncEngine
import SyncNode
import SyncServer
import SyncStore

/// A kind that accepts any object config: shows that Swift users can register their own
/// kinds, and lets tests put secrets in a config. It reads one empty page.
public struct OpenConfigKind: SyncSourceKind {
    public init() {}
    public var name: String { "open" }
    public func validate(config: JSONObject) -> [FieldError] { [] }
    public func makeSource(_ context: SourceContext) throws -> any SyncSource { EmptySource() }
    struct EmptySource: SyncSource {
        func readPage(_ request: PageRequest) async throws -> SourcePage { SourcePage(records: [], bytesRead: 0, next: nil) }
    }
}

/// A node on a fresh store (a temporary SQLite file, or a new PostgreSQL database), built by
/// the same ``TributaryNode`` as `tributary serve`, run in process by HummingbirdTesting.
public struct TestNode: Sendable {
    public let node: TributaryNode
    public let cleanup: @Sendable () -> Void
    /// The client that delivers webhooks (a node made with `webhooks:`), shut down after ``test(_:_:)``.
    public let webhookClient: UpstreamClient?
    public var server: TributaryServer { node.server }
    public var store: any SyncStore { node.store }
    public var pool: WorkerPool { node.pool }

    public init(backend: StoreBackend = .sqlite, connections: Int = 8, workers: Int = 0, tokens: [String: TokenRole] = [:],
                maxBodyBytes: Int = 1 << 20, leaseSeconds: Double = 30, pollInterval: Duration = .seconds(1),
                cancelCheckInterval: Duration = .milliseconds(500),
                rescueInterval: Duration = .seconds(1), retention: RetentionPolicy = .default, pruneInterval: Duration? = nil,
                webhooks: WebhookPolicy? = nil, egress: EgressPolicy = .default, nodeID: String = "test-node",
                upstream: UpstreamClient? = nil,
                random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) async throws {
        let (store, cleanup) = try await backend.makeStore(connections: connections)
        self.cleanup = cleanup
        // `upstream`: the http-json kind too, over that client.
        var kinds = upstream.map { SourceKindRegistry.standard(client: $0) } ?? SourceKindRegistry.builtIn
        kinds.register(OpenConfigKind())
        let webhookClient = webhooks == nil ? nil : UpstreamClient(egress: egress)
        self.webhookClient = webhookClient
        node = TributaryNode(
            store: store, kinds: kinds,
            engine: EngineConfiguration(workers: workers, nodeID: nodeID, leaseSeconds: leaseSeconds, pollInterval: pollInterval,
                                        cancelCheckInterval: cancelCheckInterval, retention: retention, pruneInterval: pruneInterval,
                                        webhooks: webhooks ?? .default),
            server: ServerConfiguration(tokens: tokens, maxBodyBytes: maxBodyBytes),
            rescueInterval: rescueInterval, scheduleInterval: .milliseconds(100), heartbeat: false, webhookClient: webhookClient,
            random: random)
    }

    public func test<T: Sendable>(_ setup: TestingSetup = .router, _ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        // In-process requests (`.router`) have no listening server to open the engine's gate.
        let app = node.application(logger: logger, engineAfterListening: false)
        defer { cleanup() }
        do {
            let result = try await app.test(setup, body)
            try? await webhookClient?.shutdown()
            return result
        } catch {
            try? await webhookClient?.shutdown()
            throw error
        }
    }
}

extension TestClientProtocol {
    public func call(_ method: HTTPRequest.Method, _ uri: String, _ json: String? = nil, headers: HTTPFields = [:]) async throws -> TestResponse {
        var headers = headers
        if json != nil { headers[.contentType] = "application/json" }
        return try await executeRequest(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    /// Creates a synthetic source and returns its JSON.
    public func createSource(_ name: String, records: Int = 10, pageSize: Int = 5, extra: String = "") async throws -> JSONValue {
        let response = try await call(.post, "/v1/sources", #"{"name": "\#(name)", "kind": "synthetic", "config": {"records": \#(records), "page_size": \#(pageSize)}\#(extra)}"#)
        guard response.status == .created else { throw TimedOut(description: "create failed: \(String(buffer: response.body))") }
        return response.json
    }
}

extension TestResponse {
    public var json: JSONValue { (try? parseJSON(Array(body.readableBytesView))) ?? .null }
    public var problemCode: String? { json["code"]?.stringValue }
}
