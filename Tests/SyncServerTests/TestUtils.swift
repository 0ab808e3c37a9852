import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SyncConnectors
import SyncCore
import SyncEngine
import SyncServer
import SyncStore
import TestSupport

/// A kind that accepts any object config: shows that Swift users can register their own
/// kinds, and lets tests put secrets in a config. It reads one empty page.
struct OpenConfigKind: SyncSourceKind {
    var name: String { "open" }
    func validate(config: JSONObject) -> [FieldError] { [] }
    func makeSource(_ context: SourceContext) throws -> any SyncSource { EmptySource() }
    struct EmptySource: SyncSource {
        func readPage(_ request: PageRequest) async throws -> SourcePage { SourcePage(records: [], bytesRead: 0, next: nil) }
    }
}

/// A node's application on a fresh store: a temporary SQLite file, or a new PostgreSQL database.
struct TestNode {
    let server: TributaryServer
    let store: any SyncStore
    let pool: WorkerPool
    let cleanup: @Sendable () -> Void
    let rescueInterval: Duration

    init(backend: StoreBackend = .sqlite, connections: Int = 8, workers: Int = 0, tokens: [String: TokenRole] = [:], maxBodyBytes: Int = 1 << 20,
         leaseSeconds: Double = 30, pollInterval: Duration = .seconds(1), rescueInterval: Duration = .seconds(1),
         random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) async throws {
        (store, cleanup) = try await backend.makeStore(connections: connections)
        self.rescueInterval = rescueInterval
        var kinds = SourceKindRegistry.builtIn
        kinds.register(OpenConfigKind())
        pool = WorkerPool(store: store, kinds: kinds,
                          configuration: EngineConfiguration(workers: workers, nodeID: "test-node", leaseSeconds: leaseSeconds,
                                                             pollInterval: pollInterval),
                          random: random)
        server = TributaryServer(env: APIEnvironment(store: store, kinds: kinds, workers: pool, maxBodyBytes: maxBodyBytes),
                                 configuration: ServerConfiguration(tokens: tokens, maxBodyBytes: maxBodyBytes))
    }

    func test<T: Sendable>(_ setup: TestingSetup = .router, _ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let rescuer = LeaseRescuer(store: store, interval: rescueInterval)
        let scheduler = Scheduler(store: store, interval: .milliseconds(100))
        let relay = StoreEventRelay(source: store, workers: pool)
        let app = server.buildApplication(services: [pool, rescuer, scheduler, relay], logger: logger)
        defer { cleanup() }
        return try await app.test(setup, body)
    }
}

extension TestClientProtocol {
    func call(_ method: HTTPRequest.Method, _ uri: String, _ json: String? = nil, headers: HTTPFields = [:]) async throws -> TestResponse {
        var headers = headers
        if json != nil { headers[.contentType] = "application/json" }
        return try await executeRequest(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    /// Creates a synthetic source and returns its JSON.
    func createSource(_ name: String, records: Int = 10, pageSize: Int = 5, extra: String = "") async throws -> JSONValue {
        let response = try await call(.post, "/v1/sources", #"{"name": "\#(name)", "kind": "synthetic", "config": {"records": \#(records), "page_size": \#(pageSize)}\#(extra)}"#)
        guard response.status == .created else { throw TimedOut(description: "create failed: \(String(buffer: response.body))") }
        return response.json
    }
}

extension TestResponse {
    var json: JSONValue { (try? parseJSON(Array(body.readableBytesView))) ?? .null }
    var problemCode: String? { json["code"]?.stringValue }
}
