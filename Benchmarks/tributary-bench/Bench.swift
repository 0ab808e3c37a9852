import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SyncConnectors
import SyncCore
import SyncEngine
import SyncServer
import SyncStore

/// Benchmarks, separate from the tests: each prints a Markdown row for docs/benchmarks.md.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tributary-bench",
        abstract: "Measure Tributary on this machine.",
        subcommands: [Latency.self, Ingest.self, Commit.self, ClaimLatency.self, StatsLatency.self, PruneTime.self, EnqueueLatency.self]
    )
}

/// A node on a temporary SQLite file, served on a loopback port.
struct BenchNode {
    let store: DatabaseStore
    let path: String
    let pool: WorkerPool
    let server: TributaryServer
    let wakeUpOnEnqueue: Bool

    init(directory: String, wakeUpOnEnqueue: Bool) async throws {
        path = directory + "/bench.sqlite"
        store = try DatabaseStore.sqlite(path: path).start()
        try await store.migrate()
        pool = WorkerPool(store: store, kinds: .builtIn, configuration: EngineConfiguration(workers: 2, nodeID: "bench"),
                          logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        // Without the store's events relayed to the pool, enqueues do not wake workers: polling only.
        self.wakeUpOnEnqueue = wakeUpOnEnqueue
        server = TributaryServer(env: APIEnvironment(store: store, kinds: .builtIn, workers: pool),
                                 configuration: ServerConfiguration(port: 0))
    }

    /// Runs the node while `body` runs against its base URL.
    func run<T: Sendable>(_ body: @escaping @Sendable (String) async throws -> T) async throws -> T {
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let services: [any Service] = wakeUpOnEnqueue ? [pool, StoreEventRelay(source: store, workers: pool)] : [pool]
        let app = server.buildApplication(services: services, logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })) { port in
            portContinuation.yield(port)
        }
        let group = ServiceGroup(services: [app], logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask { try await group.run(); return nil }
            var iterator = portStream.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            let result = try await body("http://127.0.0.1:\(port)")
            await group.triggerGracefulShutdown()
            var value: T?
            for try await r in tasks { if let r { value = r } }
            return value ?? result
        }
    }
}

struct HTTP {
    let base: String
    func call(_ method: HTTPMethod, _ path: String, _ json: String? = nil) async throws -> JSONValue {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let json {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return try JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
    }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }

/// Enqueue-to-running and cancel latency.
struct Latency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Enqueue-to-running latency and cancel latency, with and without the in-process wake-up.")

    @Option(help: "Syncs to start per configuration.") var runs = 100
    @Option(help: "Running syncs to cancel per configuration.") var cancels = 20

    func run() async throws {
        print("| measurement | wake-up on enqueue (default) | polling only (1 s fallback) |")
        print("|---|---|---|")
        var enqueue: [[Double]] = []
        var cancelLocal: [[Double]] = []
        var cancelRemote: [[Double]] = []
        for wake in [true, false] {
            let dir = NSTemporaryDirectory() + "tributary-bench-\(UUID().uuidString.prefix(6))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let node = try await BenchNode(directory: dir, wakeUpOnEnqueue: wake)
            let (runs, cancels, path) = (self.runs, self.cancels, node.path)
            let result = try await node.run { base -> [[Double]] in
                let http = HTTP(base: base)
                var starts: [Double] = []
                for i in 0..<runs {
                    _ = try await http.call(.POST, "/v1/sources", #"{"name": "one-\#(i)", "kind": "synthetic", "config": {"records": 1}}"#)
                    let id = try await http.call(.POST, "/v1/sources/one-\(i)/syncs")["id"]?.stringValue ?? ""
                    var sync: JSONValue = .null
                    repeat {
                        try await Task.sleep(for: .milliseconds(2))
                        sync = try await http.call(.GET, "/v1/syncs/\(id)")
                    } while sync["started_at"] == .null
                    let queued = Timestamp.parse(sync["queued_at"]?.stringValue ?? "")!
                    let started = Timestamp.parse(sync["started_at"]?.stringValue ?? "")!
                    starts.append(started.timeIntervalSince(queued))
                }
                // Cancels: through this node's API, and written to the database by "another process".
                let other = try DatabaseStore.sqlite(path: path).start()
                var local: [Double] = []
                var remote: [Double] = []
                for i in 0..<(2 * cancels) {
                    _ = try await http.call(.POST, "/v1/sources", #"{"name": "slow-\#(i)", "kind": "synthetic", "config": {"records": 10, "delay_ms_per_page": 600000}}"#)
                    let id = try await http.call(.POST, "/v1/sources/slow-\(i)/syncs")["id"]?.stringValue ?? ""
                    while try await http.call(.GET, "/v1/syncs/\(id)")["status"]?.stringValue != "running" {
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    let start = ContinuousClock.now
                    if i % 2 == 0 {
                        _ = try await http.call(.POST, "/v1/syncs/\(id)/cancel")
                    } else {
                        _ = try await other.requestCancel(syncID: id, now: Date())
                    }
                    while try await http.call(.GET, "/v1/syncs/\(id)")["status"]?.stringValue != "cancelled" {
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    let elapsed = ContinuousClock.now - start
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                    if i % 2 == 0 { local.append(seconds) } else { remote.append(seconds) }
                }
                return [starts, local, remote]
            }
            enqueue.append(result[0])
            cancelLocal.append(result[1])
            cancelRemote.append(result[2])
        }
        func row(_ name: String, _ values: [[Double]]) {
            let cells = values.map { "median \(ms(percentile($0, 0.5))), p95 \(ms(percentile($0, 0.95))), max \(ms($0.max() ?? .nan))" }
            print("| \(name) | \(cells[0]) | \(cells[1]) |")
        }
        row("enqueue → running, \(runs) syncs (server timestamps)", enqueue)
        row("cancel of a running sync via this node's API, \(cancels) syncs", cancelLocal)
        row("cancel written to the database by another process, \(cancels) syncs", cancelRemote)
    }
}
