import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// `GET /metrics`, parsed by prometheus_client's reference parser: every counter moves by
/// exactly what the syncs did, as the store and the upstream's own log tell it.
@Suite("Prometheus metrics")
struct MetricsTests {
    /// Every sample of a scrape: `name{label=value,…}` → value (labels sorted).
    static func scrape(_ client: any TestClientProtocol) async throws -> [String: Double] {
        let response = try await client.call(.get, "/metrics")
        #expect(response.status == .ok)
        #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        let directory = try TemporaryDirectory("metrics")
        defer { directory.remove() }
        let file = directory.file("metrics.txt")
        try Data(response.body.readableBytesView).write(to: URL(fileURLWithPath: file))
        let python = try TestPython.python(modules: ["prometheus_client"], packages: ["prometheus_client"])
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let (status, output) = try await runCommand(python, [root.appendingPathComponent("Tests/Tools/parse_metrics.py").path, file])
        #expect(status == 0, "the scrape does not parse:\n\(output)\n\(String(buffer: response.body))")
        let parsed = try parseJSON(Array(output.utf8))
        var samples: [String: Double] = [:]
        for (key, value) in parsed["samples"]?.objectValue ?? [:] { samples[key] = value.doubleValue }
        return samples
    }

    @Test(arguments: StoreBackend.allCases)
    func countersMoveByExactlyWhatTheSyncsDid(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 30, backend: backend) { client, fixture, _ in
            let base = fixture.baseURL
            _ = try await client.createHTTPSource("ok", #"{"url": "\#(base)/next?size=10", "records_path": "/rows", "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"}}"#)
            _ = try await client.createHTTPSource("flaky", #"{"url": "\#(base)/none", "records_path": "/rows", "primary_key": "id", "request_backoff_seconds": 0.01}"#)
            _ = try await client.createHTTPSource("bad", #"{"url": "\#(base)/page", "records_path": "/rows", "primary_key": "id"}"#)
            _ = try await client.createHTTPSource("retried", #"{"url": "\#(base)/none", "records_path": "/rows", "primary_key": "id", "max_request_retries": 0}"#,
                                                  extra: #", "retry": {"max_attempts": 2, "initial_delay_seconds": 0, "max_delay_seconds": 0}"#)
            let before = try await Self.scrape(client)
            fixture.clearLog()
            fixture.inject(.status(503, retryAfter: "0"), path: "/none", times: 1)
            fixture.inject(.status(401), path: "/page", times: 1)
            var syncs: [JSONValue] = []
            for name in ["ok", "flaky", "bad", "retried"] {
                // The flaky source's 503 is used up by now: the retried one's first attempt gets a 500.
                if name == "retried" { fixture.inject(.status(500), path: "/none", times: 1) }
                syncs.append(try await client.runSync(name))
            }
            #expect(syncs.map { $0["status"]?.stringValue } == ["completed", "completed", "failed", "completed"])
            #expect(syncs[3]["attempt"] == .number(2))
            // A worker counts a sync just after the commit that the API already shows: scrape
            // until the last one is in (then every figure must be exact).
            var after = try await Self.scrape(client)
            for _ in 0..<50 where (after["tributary_syncs_finished_total{kind=http-json,status=completed}"] ?? 0)
                - (before["tributary_syncs_finished_total{kind=http-json,status=completed}"] ?? 0) < 3 {
                try await Task.sleep(for: .milliseconds(100))
                after = try await Self.scrape(client)
            }
            func delta(_ key: String) -> Double { (after[key] ?? 0) - (before[key] ?? 0) }
            func sum(_ field: String) -> Double { syncs.reduce(0) { $0 + ($1["progress"]?[field]?.doubleValue ?? 0) } }

            #expect(delta("tributary_syncs_finished_total{kind=http-json,status=completed}") == 3)
            #expect(delta("tributary_syncs_finished_total{kind=http-json,status=failed}") == 1)
            #expect(delta("tributary_sync_duration_seconds_count{status=completed}") == 3)
            #expect(delta("tributary_pages_committed_total{}") == sum("pages"))
            #expect(sum("pages") == 5)
            #expect(delta("tributary_records_total{operation=created}") == sum("records_created"))
            #expect(sum("records_created") == 90)
            #expect(delta("tributary_upstream_requests_total{code_class=4xx}") == 1)
            #expect(delta("tributary_upstream_requests_total{code_class=5xx}") == 2)
            let answered = ["2xx", "4xx", "5xx", "error"].reduce(0) { $0 + delta("tributary_upstream_requests_total{code_class=\($1)}") }
            #expect(answered == Double(fixture.requests.count))
            #expect(delta("tributary_upstream_retries_total{}") == 1)
            // Requests by route template: four triggers, whatever the ids; no id in any label.
            #expect(delta("tributary_http_request_duration_seconds_count{method=POST,route=/v1/sources/{id}/syncs,status=202}") == 4)
            let idLabels = after.keys.filter { $0.contains("src_") || $0.contains("syn_") || $0.contains("route=/v1/sources/ok") }
            #expect(idLabels.isEmpty, "\(idLabels)")
            #expect(after["tributary_database_up{}"] == 1)
        }
    }

    /// A worker whose lease monitor checks every millisecond sees the lease end right after
    /// the last page completed the sync; the sync is still its own, and counted.
    @Test(arguments: StoreBackend.allCases)
    func everyCompletedSyncIsCountedWhateverTheMonitorSaw(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 4, cancelCheckInterval: .milliseconds(1)).test { client in
            var ids: [String] = []
            for i in 0..<40 {
                _ = try await client.createSource("m\(i)", records: 3, pageSize: 5)
                ids.append(try #require(try await client.call(.post, "/v1/sources/m\(i)/syncs").json["id"]?.stringValue))
            }
            for id in ids {
                _ = try await eventually { try await client.call(.get, "/v1/syncs/\(id)").json["status"] == .string("completed") ? true : nil }
            }
            // A worker counts a sync just after the commit the API shows: scrape until all are in,
            // then once more (a sync counted twice would show as 41 or more).
            let key = "tributary_syncs_finished_total{kind=synthetic,status=completed}"
            var samples = try await Self.scrape(client)
            for _ in 0..<50 where (samples[key] ?? 0) < 40 {
                try await Task.sleep(for: .milliseconds(100))
                samples = try await Self.scrape(client)
            }
            #expect(samples[key] == 40)
            #expect(try await Self.scrape(client)[key] == 40)
        }
    }

    /// The queue gauges are the database's: syncs queued, claimed and left with an expired
    /// lease by "another node" (written straight through the store, which this node's own
    /// counters never see) are what a node with no workers reports.
    @Test(arguments: StoreBackend.allCases)
    func queueGaugesComeFromTheDatabase(_ backend: StoreBackend) async throws {
        let node = try await TestNode(backend: backend, rescueInterval: .seconds(3600))
        try await node.test { client in
            let store = node.store
            for i in 0..<6 { try await createAndQueue(store, makeSource(name: "q\(i)")) }
            _ = try #require(try await store.claimNext(owner: "other-node", leaseSeconds: 300, now: Date()))
            _ = try #require(try await store.claimNext(owner: "dead-node", leaseSeconds: 0.05, now: Date()))
            try await Task.sleep(for: .milliseconds(300))
            let samples = try await Self.scrape(client)
            #expect(samples["tributary_queue_depth{}"] == 4)
            #expect((samples["tributary_queue_oldest_age_seconds{}"] ?? -1) >= 0.3)
            #expect(samples["tributary_syncs_running{}"] == 2)
            #expect(samples["tributary_leases_expired{}"] == 1)
            // A queued sync cancelled by the API is a finished sync, counted once however often
            // the cancel is repeated.
            let id = try #require(try await client.call(.get, "/v1/syncs?status=queued").json["items"]?.arrayValue?.first?["id"]?.stringValue)
            for _ in 0..<3 { #expect(try await client.call(.post, "/v1/syncs/\(id)/cancel").status == .accepted) }
            let after = try await Self.scrape(client)
            #expect(after["tributary_syncs_finished_total{kind=synthetic,status=cancelled}"] == 1)
            #expect(after["tributary_queue_depth{}"] == 3)
            // A bulk cancel counts the three queued syncs it ended (the two running ones are only
            // flagged: they finish on their nodes), again once however often it is repeated.
            for _ in 0..<2 { #expect(try await client.call(.post, "/v1/syncs/cancel", "{}").status == .ok) }
            let bulk = try await Self.scrape(client)
            #expect(bulk["tributary_syncs_finished_total{kind=synthetic,status=cancelled}"] == 4)
            #expect(bulk["tributary_queue_depth{}"] == 0)
        }
        // /metrics needs no token, like /healthz.
        try await TestNode(tokens: ["t": .admin]).test { client in
            let metrics = try await client.call(.get, "/metrics")
            let stats = try await client.call(.get, "/v1/stats")
            #expect(metrics.status == .ok)
            #expect(stats.status == .unauthorized)
        }
    }

    /// The rescuer's and the pruner's counters: a sync left running with an expired lease by
    /// "another node" is taken back and counted once; finished syncs past the retention are
    /// deleted and counted, each once.
    @Test(arguments: StoreBackend.allCases)
    func theRescuerAndThePrunerCountWhatTheyDid(_ backend: StoreBackend) async throws {
        let node = try await TestNode(backend: backend, rescueInterval: .milliseconds(200),
                                      retention: RetentionPolicy(olderThanSeconds: 0, keepLastPerSource: 0), pruneInterval: .milliseconds(300))
        try await node.test { client in
            let store = node.store
            var ids: [String] = []
            for i in 0..<3 { ids.append(try await createAndQueue(store, makeSource(name: "m\(i)")).id) }
            let dead = try #require(try await store.claimNext(owner: "dead-node", leaseSeconds: 0.05, now: Date()))
            // The two never claimed are finished (cancelled while queued): the pruner's. Named by
            // id: once rescued, the dead node's sync is queued too, and must not be cancelled.
            for id in ids where id != dead.sync.id {
                #expect(try await client.call(.post, "/v1/syncs/\(id)/cancel").status == .accepted)
            }
            var samples = try await Self.scrape(client)
            for _ in 0..<50 where (samples["tributary_leases_rescued_total{}"] ?? 0) < 1 || (samples["tributary_syncs_pruned_total{}"] ?? 0) < 2 {
                try await Task.sleep(for: .milliseconds(100))
                samples = try await Self.scrape(client)
            }
            #expect(samples["tributary_leases_rescued_total{}"] == 1)
            #expect(samples["tributary_syncs_pruned_total{}"] == 2)
            try await Task.sleep(for: .milliseconds(700))
            let later = try await Self.scrape(client)
            #expect(later["tributary_leases_rescued_total{}"] == 1 && later["tributary_syncs_pruned_total{}"] == 2, "counted again")
        }
    }

    /// The cluster gauges read the database: nodes and their workers by heartbeat (a stale
    /// one left out), sources whose latest sync failed, scheduled sources gone stale; a path
    /// no route matches is `unmatched`; each redirect hop is a `3xx` upstream request.
    @Test(arguments: StoreBackend.allCases)
    func theClusterGaugesAndTheRouteAndRedirectLabels(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 2, backend: backend) { client, fixture, store in
            let now = Date()
            try await store.registerNode(NodeInfo(id: "n-live", role: "all", workers: 5, startedAt: now, heartbeatAt: now))
            try await store.registerNode(NodeInfo(id: "n-2", role: "worker", workers: 3, startedAt: now, heartbeatAt: now))
            try await store.registerNode(NodeInfo(id: "n-gone", role: "all", workers: 7, startedAt: now.addingTimeInterval(-600), heartbeatAt: now.addingTimeInterval(-600)))
            fixture.inject(.status(500), path: "/none", times: 1)
            _ = try await client.createHTTPSource("broken", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id", "max_request_retries": 0}"#,
                                                  extra: #", "retry": {"max_attempts": 1}"#)
            #expect(try await client.runSync("broken")["status"] == .string("failed"))
            _ = try await client.createHTTPSource("every", #"{"url": "\#(fixture.baseURL)/none", "records_path": "/rows", "primary_key": "id"}"#,
                                                  extra: #", "schedule": {"every_seconds": 1}"#)
            #expect(try await client.runSync("every")["status"] == .string("completed"))
            #expect(try await client.call(.post, "/v1/sources/every/pause").status == .ok)
            _ = try await eventually(timeout: .seconds(10)) { try await client.call(.get, "/v1/sources/every").json["health"] == .string("stale") ? true : nil }
            fixture.inject(.redirect(to: "\(fixture.baseURL)/none"), path: "/next", times: 1)
            _ = try await client.createHTTPSource("moved", #"{"url": "\#(fixture.baseURL)/next", "records_path": "/rows", "primary_key": "id"}"#)
            let before = try await Self.scrape(client)
            let moved = try await client.runSync("moved")
            #expect(moved["status"] == .string("completed"), "\(moved["error"] ?? .null)")
            #expect(try await client.call(.get, "/no/such/path").status == .notFound)
            let after = try await Self.scrape(client)
            #expect(after["tributary_nodes_live{}"] == 2)
            #expect(after["tributary_workers_live{}"] == 8)
            #expect(after["tributary_sources_failing{}"] == 1)
            #expect(after["tributary_sources_stale{}"] == 1)
            #expect((after["tributary_upstream_requests_total{code_class=3xx}"] ?? 0) - (before["tributary_upstream_requests_total{code_class=3xx}"] ?? 0) == 1)
            #expect(after.keys.contains { $0.hasPrefix("tributary_http_request_duration_seconds_count{") && $0.contains("route=unmatched") && $0.contains("status=404") },
                    "\(after.keys.filter { $0.contains("count{") })")
        }
    }
}
