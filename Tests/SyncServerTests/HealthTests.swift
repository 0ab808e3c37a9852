import Foundation
import HummingbirdTesting
import Logging
import Testing
import SyncConnectors
import SyncCore
import SyncEngine
import SyncServer
import SyncStore
import TestSupport

/// `/v1/health` moves to `degraded` for each check that fails and back to `ok` when it
/// recovers; a database that does not answer makes it `unhealthy` (503).
@Suite("Health")
struct HealthTests {
    func health(_ client: some TestClientProtocol) async throws -> (status: String, checks: [String: JSONValue]) {
        let json = try await client.call(.get, "/v1/health").json
        var checks: [String: JSONValue] = [:]
        for check in json["checks"]?.arrayValue ?? [] { checks[check["name"]?.stringValue ?? ""] = check }
        return (json["status"]?.stringValue ?? "", checks)
    }

    @Test(arguments: StoreBackend.allCases)
    func eachCheckDegradesAndRecovers(_ backend: StoreBackend) async throws {
        // The rescuer never looks during the test (an hour): the expired lease below stays
        // visible until the test rescues it. (A 3 s rescuer raced the check on a loaded machine.)
        let node = try await TestNode(backend: backend, rescueInterval: .seconds(3600))
        let store = node.store
        try await node.test { client in
            let now = Date()
            // Its heartbeat is an hour ahead, so it stays live however slowly this test runs.
            try await store.registerNode(NodeInfo(id: "live", role: "all", workers: 2, startedAt: now, heartbeatAt: now.addingTimeInterval(3600)))
            var h = try await health(client)
            #expect(h.status == "ok", "\(h.checks)")

            // A node that stopped heartbeating: workers degraded; removed, ok again.
            try await store.registerNode(NodeInfo(id: "gone", role: "all", workers: 2, startedAt: now, heartbeatAt: now.addingTimeInterval(-60)))
            h = try await health(client)
            #expect(h.status == "degraded")
            #expect(h.checks["workers"]?["status"] == .string("degraded"))
            #expect(h.checks["workers"]?["stale_nodes"] == .number(1))
            try await store.removeNode(id: "gone")
            #expect(try await health(client).status == "ok")

            // A running sync whose lease expired: stuck until the rescuer takes it back.
            let stuck = try await store.createSource(makeSource(name: "stuck"))
            _ = try await store.enqueue(EnqueueRequest(sourceID: stuck.id, mode: .full, priority: 0, trigger: .api, now: now.addingTimeInterval(-200)))
            _ = try #require(try await store.claimNext(owner: "dead-node", leaseSeconds: 1, now: now.addingTimeInterval(-120)))
            h = try await health(client)
            #expect(h.checks["stuck_syncs"]?["count"] == .number(1))
            #expect(h.status == "degraded")
            #expect(try await store.rescueExpiredLeases(now: Date()).count == 1)
            #expect(try await health(client).checks["stuck_syncs"]?["count"] == .number(0))
            #expect(try await health(client).checks["queue"]?["depth"] == .number(1))

            // A source whose latest finished sync failed: failing until one completes.
            let source = try await store.createSource(makeSource(name: "flaky"))
            func run(_ outcome: AttemptOutcome) async throws {
                _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
                var claimed = try #require(try await store.claimNext(owner: "live", leaseSeconds: 30, now: Date()))
                while claimed.source.id != source.id {
                    // The rescued sync of the other source may come first; park it.
                    _ = try await store.finish(claimed.lease, outcome: .cancelled, now: Date())
                    claimed = try #require(try await store.claimNext(owner: "live", leaseSeconds: 30, now: Date()))
                }
                _ = try await store.finish(claimed.lease, outcome: outcome, now: Date())
            }
            try await run(.failed(SyncError(.upstreamAuthFailed, "HTTP 401 from upstream", retryable: false)))
            h = try await health(client)
            #expect(h.status == "degraded")
            #expect(h.checks["failing_sources"]?["sources"]?.arrayValue?.first?["name"] == .string("flaky"))
            try await run(.completed)
            h = try await health(client)
            #expect(h.checks["failing_sources"]?["count"] == .number(0))
            #expect(h.status == "ok", "\(h.checks)")
        }
    }

    /// A PostgreSQL database that does not answer: `unhealthy`, 503, and within the check's
    /// 2 s bound. One port refuses; the other accepts the connection and never answers (a
    /// listener that never reads), so only the bound can end the check.
    @Test(arguments: [false, true])
    func anUnreachableDatabaseIsUnhealthy(_ silent: Bool) async throws {
        let listener = Process()
        let output = Pipe()
        var port = try PostgresCluster.freePort()
        if silent {
            // The system's python3 itself (a pyenv shim forks it, and terminate() would not reach it).
            listener.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            listener.arguments = ["-c", "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(16)\nprint(s.getsockname()[1], flush=True)\ntime.sleep(120)"]
            listener.standardOutput = output
            listener.standardError = FileHandle.nullDevice
            try listener.run()
            let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            port = try #require(Int(line.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        defer { if listener.isRunning { listener.terminate() } }
        let store = try DatabaseStore.postgres(url: "postgres://postgres@127.0.0.1:\(port)/nothing", maximumConnections: 2).start()
        defer { Task { await store.close() } }
        let kinds = SourceKindRegistry.builtIn
        let pool = WorkerPool(store: store, kinds: kinds, configuration: EngineConfiguration(workers: 0, nodeID: "n"))
        let server = TributaryServer(env: APIEnvironment(store: store, kinds: kinds, workers: pool), configuration: ServerConfiguration())
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        try await server.buildApplication(services: [pool], logger: logger).test(.router) { client in
            let started = ContinuousClock.now
            let r = try await client.call(.get, "/v1/health")
            let took = ContinuousClock.now - started
            #expect(r.status == .serviceUnavailable)
            #expect(r.json["status"] == .string("unhealthy"))
            #expect(r.json["checks"]?.arrayValue?.first?["name"] == .string("database"))
            // The client keeps trying a refused port too, so both end at the bound.
            #expect(took < .seconds(4), "\(took)")
            if silent { #expect(took >= .milliseconds(1900), "a database that never answers, answered in \(took)") }
            #expect(try await client.call(.get, "/readyz").status == .serviceUnavailable)
            #expect(try await client.call(.get, "/healthz").status == .ok)
            // The metrics still answer, and say the database is down.
            let metrics = try await client.call(.get, "/metrics")
            let up = String(buffer: metrics.body).split(separator: "\n").first { $0.hasPrefix("tributary_database_up ") }
            #expect(metrics.status == .ok && up.flatMap { Double($0.split(separator: " ").last ?? "") } == 0, "\(up ?? "no tributary_database_up")")
        }
    }
}
