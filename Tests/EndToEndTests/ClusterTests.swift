import Foundation
import Testing
import SyncConnectors
import SyncCore
import TestSupport

/// Many `tributary serve` processes on one PostgreSQL database: the invariants of
/// docs/architecture.md across processes, with the built binary and a real server.
@Suite("Cluster on PostgreSQL", .serialized)
struct ClusterTests {
    /// Starts `count` nodes on `database`, named n1, n2, …
    func startNodes(_ count: Int, database: String, directory: TemporaryDirectory, extra: [String] = []) async throws -> [TributaryProcess] {
        var nodes: [TributaryProcess] = []
        for index in 1...count {
            nodes.append(try await TributaryProcess(
                serve: ["--database", database, "--node-id", "n\(index)"] + extra, directory: directory, name: "n\(index)"))
        }
        return nodes
    }

    /// `count` sources (`prefix-1`…) of the synthetic kind with `config`, each with one queued
    /// full sync, written by SQL in one statement pair (ids `src_PREFIX0000001`…,
    /// `syn_PREFIX0000001`…); `queuedAt` is an SQL expression of `i`. Then a wake for every node.
    func insertQueuedSyncs(_ database: String, prefix: String, count: Int, config: String, queuedAt: String) async throws {
        _ = try await PostgresCluster.psql(database, """
            INSERT INTO sources (id, name, kind, config, retry, created_at, updated_at, rate_key)
            SELECT 'src_\(prefix)' || lpad(i::text, 7, '0'), '\(prefix)-' || i, 'synthetic', '\(config)',
                   '{"initial_delay_seconds":2,"max_attempts":5,"max_delay_seconds":300,"multiplier":2}', 0, 0, 'source:src_\(prefix)' || lpad(i::text, 7, '0')
            FROM generate_series(1, \(count)) AS i;
            INSERT INTO syncs (id, source_id, status, mode, priority, trigger, max_attempts, queued_at, run_at, rate_key)
            SELECT 'syn_\(prefix)' || lpad(i::text, 7, '0'), 'src_\(prefix)' || lpad(i::text, 7, '0'), 'queued', 'full', 0, 'api', 5,
                   \(queuedAt), \(queuedAt), 'source:src_\(prefix)' || lpad(i::text, 7, '0')
            FROM generate_series(1, \(count)) AS i;
            NOTIFY tributary_events, 'wake';
            """)
    }

    /// `nodes` nodes (4 workers each) on a new database, draining `count` slow one-page-a-300-ms
    /// syncs, returned once every node runs some of them.
    func nodesRunningSlowSyncs(_ nodes: Int, count: Int, prefix: String, directory: TemporaryDirectory) async throws -> (database: String, nodes: [TributaryProcess]) {
        let database = try await PostgresCluster.shared().createDatabase(prefix)
        let started = try await startNodes(nodes, database: database, directory: directory, extra: ["--workers", "4"])
        try await insertQueuedSyncs(database, prefix: prefix, count: count, config: #"{"records":5,"page_size":1,"delay_ms_per_page":300}"#,
                                    queuedAt: "extract(epoch FROM now())")
        _ = try await eventually(timeout: .seconds(30), every: .milliseconds(100)) { () -> Bool? in
            let out = try await PostgresCluster.psql(database, "SELECT count(DISTINCT lease_owner) FROM syncs WHERE status = 'running'")
            return Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) == nodes ? true : nil
        }
        return (database, started)
    }

    /// The node of the sync's running attempt, once it runs.
    func runningNode(_ client: APIClient, _ id: String) async throws -> String {
        try await eventually(every: .milliseconds(10)) { () -> String? in
            let s = try await sync(client, id)
            guard s["status"]?.stringValue == "running", (s["progress"]?["pages"]?.intValue ?? 0) >= 2 else { return nil }
            return s["attempts"]?.arrayValue?.last?["node"]?.stringValue
        }
    }

    func stopAll(_ nodes: [TributaryProcess]) async throws {
        for node in nodes where node.isRunning { #expect(try await node.terminate() == 0, "\(node.log.suffix(2000))") }
    }

    /// Six sources sharing a concurrency key of limit 2, on three nodes with four workers
    /// each: by the attempts' recorded times, never more than two of them ran at once.
    @Test func aConcurrencyKeyHoldsAcrossThreeNodes() async throws {
        let dir = try TemporaryDirectory("e2e-concurrency")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("conc")
        let nodes = try await startNodes(3, database: database, directory: dir, extra: ["--workers", "4"])
        for i in 0..<6 {
            let body = #"{"name": "k\#(i)", "kind": "synthetic", "config": {"records": 4, "page_size": 1, "delay_ms_per_page": 150}, "concurrency": {"key": "acct-7", "limit": 2}}"#
            #expect(try await nodes[i % 3].client.post("/v1/sources", body).status == 201)
        }
        // Every node is asked at once, several times, so the claims truly race.
        for round in 0..<3 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<6 { group.addTask { _ = try await nodes[(i + round) % 3].client.post("/v1/sources/k\(i)/syncs") } }
                try await group.waitForAll()
            }
            while true {
                let out = try await PostgresCluster.psql(database, """
                    SELECT count(*) FROM syncs WHERE concurrency_key = 'acct-7' AND status IN ('queued', 'running', 'retrying')
                    """)
                if out.trimmingCharacters(in: .whitespacesAndNewlines) == "0" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        // How many ran at once, from every attempt's recorded start and end (the nodes' clocks
        // are this machine's).
        let out = try await PostgresCluster.psql(database, """
            SELECT a.started_at || ' ' || a.finished_at FROM sync_attempts a JOIN syncs s ON s.id = a.sync_id
            WHERE s.concurrency_key = 'acct-7'
            """)
        let attempts = out.split(separator: "\n").compactMap { line -> (start: Double, end: Double)? in
            let parts = line.split(separator: " ").compactMap { Double($0) }
            return parts.count == 2 ? (parts[0], parts[1]) : nil
        }
        #expect(attempts.count == 18)
        #expect(maximumOverlap(attempts) == 2, "at most 2 at once, and both slots used: \(attempts)")
        let done = try await PostgresCluster.psql(database, "SELECT count(*) FROM syncs WHERE status = 'completed'")
        #expect(done.trimmingCharacters(in: .whitespacesAndNewlines) == "18")
        try await stopAll(nodes)
    }

    /// Six sources share a rate limit of 5 requests/s (burst 5) on three nodes: the upstream
    /// never sees more than burst + rate requests in any one-second window.
    @Test func aSharedRateLimitHoldsAcrossThreeNodes() async throws {
        let fixture = FixtureUpstream(items: 8)
        try await fixture.start()
        defer { Task { await fixture.stop() } }
        let dir = try TemporaryDirectory("e2e-rate")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("rate")
        let nodes = try await startNodes(3, database: database, directory: dir, extra: ["--workers", "2"])
        for i in 0..<6 {
            let body = #"""
                {"name": "r\#(i)", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/next?size=1", "records_path": "/rows",
                 "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"}},
                 "rate_limit": {"requests_per_second": 5, "burst": 5, "key": "shared-api"}}
                """#
            #expect(try await nodes[i % 3].client.post("/v1/sources", body).status == 201)
        }
        var ids: [String] = []
        for i in 0..<6 { ids.append(try #require(try await nodes[i % 3].client.post("/v1/sources/r\(i)/syncs").json["id"]?.stringValue)) }
        for id in ids {
            let done = try await eventually(timeout: .seconds(90), every: .milliseconds(200)) { () -> JSONValue? in
                let s = try await sync(nodes[0].client, id)
                return ["completed", "failed"].contains(s["status"]?.stringValue ?? "") ? s : nil
            }
            #expect(done["status"] == .string("completed"))
        }
        let times = fixture.requests.map(\.at).sorted()
        #expect(times.count == 6 * 8)
        var worst = 0
        for (i, start) in times.enumerated() {
            worst = max(worst, times[i...].prefix { $0 - start < .seconds(1) }.count)
        }
        #expect(worst <= 10, "at most burst + rate in any second: \(worst)")
        let ran = Set(try await ids.asyncMap { try await sync(nodes[0].client, $0)["attempts"]?.arrayValue?.first?["node"]?.stringValue ?? "" })
        #expect(ran.count >= 2, "the syncs ran on several nodes: \(ran)")
        try await stopAll(nodes)
    }

    /// A node drained through another node's API takes nothing new; its running sync
    /// finishes; resumed, it claims again. The CLI does the same.
    @Test func aDrainedNodeStopsClaiming() async throws {
        let dir = try TemporaryDirectory("e2e-drain")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("drain")
        let nodes = try await startNodes(2, database: database, directory: dir, extra: ["--workers", "2"])
        let slow = #"{"name": "slow", "kind": "synthetic", "config": {"records": 20, "page_size": 2, "delay_ms_per_page": 200}}"#
        #expect(try await nodes[0].client.post("/v1/sources", slow).status == 201)
        // A sync running on n1 when it is drained finishes there.
        let running = try #require(try await nodes[0].client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        let first = try await runningNode(nodes[0].client, running)
        let drainedNode = first == "n1" ? nodes[0] : nodes[1], other = first == "n1" ? nodes[1] : nodes[0]
        let (code, out) = try await runTributary(["node", "drain", first, "--server", other.baseURL], directory: dir)
        #expect(code == 0, "\(out)")
        #expect(try await other.client.post("/v1/nodes/nope/drain").status == 404)
        try await Task.sleep(for: .milliseconds(1200))  // the drained node reads its flag within a second
        for i in 0..<6 {
            #expect(try await other.client.post("/v1/sources", #"{"name": "q\#(i)", "kind": "synthetic", "config": {"records": 2}}"#).status == 201)
            #expect(try await drainedNode.client.post("/v1/sources/q\(i)/syncs").status == 202)
        }
        let done = try await eventually(timeout: .seconds(60), every: .milliseconds(100)) { () -> [JSONValue]? in
            let items = try await other.client.get("/v1/syncs?limit=100").json["items"]?.arrayValue ?? []
            return items.count == 7 && items.allSatisfy({ $0["status"] == .string("completed") }) ? items : nil
        }
        for s in done where s["id"]?.stringValue != running {
            #expect(s["attempts"]?.arrayValue?.first?["node"]?.stringValue != first, "a drained node claimed \(s["id"] ?? .null)")
        }
        #expect(done.first { $0["id"]?.stringValue == running }?["attempts"]?.arrayValue?.last?["node"]?.stringValue == first)
        let health = try await other.client.get("/v1/health").json
        let listed = health["checks"]?.arrayValue?.first { $0["name"] == .string("workers") }?["nodes"]?.arrayValue ?? []
        #expect(listed.first { $0["id"]?.stringValue == first }?["draining"] == .bool(true))
        // Resumed, it claims again.
        #expect(try await other.client.post("/v1/nodes/\(first)/resume").json["draining"] == .bool(false))
        try await Task.sleep(for: .milliseconds(1200))
        #expect(try await other.client.post("/v1/nodes/\(first == "n1" ? "n2" : "n1")/drain").status == 200)
        try await Task.sleep(for: .milliseconds(1200))
        let again = try #require(try await other.client.post("/v1/sources/q0/syncs").json["id"]?.stringValue)
        let ran = try await eventually(timeout: .seconds(30), every: .milliseconds(100)) { () -> String? in
            let s = try await sync(other.client, again)
            return s["status"] == .string("completed") ? s["attempts"]?.arrayValue?.first?["node"]?.stringValue : nil
        }
        #expect(ran == first)
        try await stopAll(nodes)
    }

    /// 1,000 queued syncs drained by three nodes; one bulk cancel sent to one node: within
    /// the cancel window none is queued or running anywhere, and every one it hit is cancelled
    /// but for running ones whose last page committed first (completed, flagged).
    @Test func aBulkCancelOfAThousandSyncsOverThreeNodesLeavesNoneRunning() async throws {
        let dir = try TemporaryDirectory("e2e-bulk")
        defer { dir.remove() }
        let (database, nodes) = try await nodesRunningSlowSyncs(3, count: 1000, prefix: "bulk", directory: dir)
        let r = try await nodes[1].client.post("/v1/syncs/cancel", #"{"status": ["queued", "running", "retrying"]}"#)
        #expect(r.status == 200, "\(r.text)")
        let affected = try #require(r.json["affected"]?.intValue)
        // Most are hit; how many completed before the cancel depends on how long the three
        // nodes took to start (a loaded machine: 132 once). The accounting below is exact.
        #expect(affected > 500 && affected <= 1000, "\(affected)")
        _ = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) { () -> Bool? in
            let out = try await PostgresCluster.psql(database, "SELECT count(*) FROM syncs WHERE status IN ('queued', 'running', 'retrying')")
            return out.trimmingCharacters(in: .whitespacesAndNewlines) == "0" ? true : nil
        }
        // Every sync is accounted for: the cancel hit `affected` of them, and each one it hit is
        // cancelled, except a running one whose last page committed before its node saw the
        // flag (it ends completed, flagged: at most the 12 that were running); the others had
        // completed before the cancel.
        let counts = try await PostgresCluster.psql(database, """
            SELECT count(*) FILTER (WHERE status = 'cancelled'), count(*) FILTER (WHERE status = 'completed' AND cancel_requested),
                   count(*) FILTER (WHERE status = 'completed' AND NOT cancel_requested), count(*) FROM syncs
            """)
        let parts = counts.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").compactMap { Int($0) }
        try #require(parts.count == 4, "\(counts)")
        let (cancelled, completedFlagged, completedBefore) = (parts[0], parts[1], parts[2])
        #expect(parts[3] == 1000 && cancelled + completedFlagged + completedBefore == 1000, "\(counts)")
        #expect(cancelled + completedFlagged == affected, "hit \(affected): \(counts)")
        #expect(completedFlagged <= 12, "\(counts)")
        try await stopAll(nodes)
    }

    /// Two bulk cancels racing on two nodes over the same 600 syncs (some running, so flagged):
    /// a sync counts as affected only for the call whose write changed it, so the two
    /// `affected` add up to the syncs the cancel hit, never more than exist.
    @Test func twoBulkCancelsRacingOnTwoNodesCountEachSyncOnce() async throws {
        let dir = try TemporaryDirectory("e2e-bulk-race")
        defer { dir.remove() }
        let (database, nodes) = try await nodesRunningSlowSyncs(2, count: 600, prefix: "race", directory: dir)
        async let first = nodes[0].client.post("/v1/syncs/cancel", #"{"status": ["queued", "running", "retrying"]}"#)
        async let second = nodes[1].client.post("/v1/syncs/cancel", #"{"status": ["queued", "running", "retrying"]}"#)
        let answers = try await [first, second]
        let affected = answers.compactMap { $0.json["affected"]?.intValue }
        try #require(affected.count == 2, "\(answers.map(\.text))")
        _ = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) { () -> Bool? in
            let out = try await PostgresCluster.psql(database, "SELECT count(*) FROM syncs WHERE status IN ('queued', 'running', 'retrying')")
            return out.trimmingCharacters(in: .whitespacesAndNewlines) == "0" ? true : nil
        }
        let hit = try await PostgresCluster.psql(database, "SELECT count(*) FROM syncs WHERE cancel_requested")
        #expect(affected[0] + affected[1] == Int(hit.trimmingCharacters(in: .whitespacesAndNewlines)), "affected \(affected), flagged or cancelled \(hit)")
        #expect(affected[0] + affected[1] <= 600, "\(affected)")
        try await stopAll(nodes)
    }

    /// A bulk action takes at most 10,000 syncs per call, newest first: of 10,050 queued
    /// syncs a cancel takes the 10,000 newest and leaves the 50 oldest queued; the next call
    /// takes those.
    @Test func aBulkCancelTakesTenThousandNewestFirst() async throws {
        let dir = try TemporaryDirectory("e2e-bulk-cap")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("cap")
        let nodes = try await startNodes(1, database: database, directory: dir, extra: ["--workers", "0"])
        try await insertQueuedSyncs(database, prefix: "cap", count: 10050, config: #"{"records":1}"#, queuedAt: "1700000000 + i")
        // Each sync under the single-sync rules: slow at the cap in a debug build (tens of seconds).
        let started = ContinuousClock.now
        let first = try await nodes[0].client.request(.POST, "/v1/syncs/cancel", json: "{}", timeout: .seconds(300))
        #expect(first.status == 200 && first.json["affected"] == .number(10_000), "\(first.text)")
        print("bulk cancel of 10,000 queued syncs took \(ContinuousClock.now - started)")
        let left = try await PostgresCluster.psql(database, "SELECT string_agg(id, ',' ORDER BY id) FROM syncs WHERE status = 'queued'")
        let expected = (1...50).map { "syn_cap" + String(repeating: "0", count: 7 - String($0).count) + String($0) }.joined(separator: ",")
        #expect(left.trimmingCharacters(in: .whitespacesAndNewlines) == expected, "the oldest 50 stay queued")
        let second = try await nodes[0].client.post("/v1/syncs/cancel", "{}")
        #expect(second.json["affected"] == .number(50), "\(second.text)")
        try await stopAll(nodes)
    }

    /// Three sources sharing a key on three nodes; the upstream answers one request with
    /// `429 Retry-After: 3`. After the grants already handed out (a quarter second), no node
    /// sends a request of the key until 3 s later, and no attempt fails.
    @Test func aRetryAfterClosesTheKeyOnEveryNode() async throws {
        let fixture = FixtureUpstream(items: 30)
        try await fixture.start()
        defer { Task { await fixture.stop() } }
        let dir = try TemporaryDirectory("e2e-retry-after")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("closed")
        let nodes = try await startNodes(3, database: database, directory: dir, extra: ["--workers", "1"])
        for i in 0..<3 {
            let body = #"""
                {"name": "c\#(i)", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/next?size=1", "records_path": "/rows",
                 "primary_key": "id", "pagination": {"type": "next_url", "path": "/next_url"}},
                 "rate_limit": {"requests_per_second": 20, "burst": 5, "key": "crm"}}
                """#
            #expect(try await nodes[i].client.post("/v1/sources", body).status == 201)
        }
        fixture.inject(.status(429, retryAfter: "3"), path: "/next", times: 1, after: 12)
        var ids: [String] = []
        for i in 0..<3 { ids.append(try #require(try await nodes[i].client.post("/v1/sources/c\(i)/syncs").json["id"]?.stringValue)) }
        for id in ids {
            let done = try await eventually(timeout: .seconds(60), every: .milliseconds(200)) { () -> JSONValue? in
                let s = try await sync(nodes[0].client, id)
                return ["completed", "failed"].contains(s["status"]?.stringValue ?? "") ? s : nil
            }
            #expect(done["status"] == .string("completed"))
            // A closure longer than a second hands a sync back (another attempt); none fails.
            let statuses = done["attempts"]?.arrayValue?.compactMap { $0["status"]?.stringValue } ?? []
            #expect(!statuses.contains("failed") && !statuses.contains("retrying"), "no attempt failed: \(statuses)")
        }
        let log = fixture.requests
        let refused = try #require(log.dropFirst(12).first)
        let early = log.filter { $0.at > refused.at + .milliseconds(300) && $0.at < refused.at + .milliseconds(2950) }
        #expect(early.isEmpty, "requests while the key was closed: \(early.map { $0.at - refused.at })")
        #expect(log.count == 3 * 30 + 1)
        let ran = Set(try await ids.asyncMap { try await sync(nodes[0].client, $0)["attempts"]?.arrayValue?.first?["node"]?.stringValue ?? "" })
        #expect(ran.count == 3, "one sync per node: \(ran)")
        try await stopAll(nodes)
    }

    @Test func threeNodesHundredConcurrentTriggersQueueExactlyOneSync() async throws {
        let dir = try TemporaryDirectory("cluster-storm")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("storm")
        let nodes = try await startNodes(3, database: database, directory: dir, extra: ["--workers", "0"])
        try await createSlowSource(nodes[0].client, records: 10, pageSize: 5, delayMs: 0)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<100 {
                let client = nodes[i % 3].client
                group.addTask { try await client.post("/v1/sources/slow/syncs").status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.filter { $0 == 202 }.count == 1)
        #expect(statuses.filter { $0 == 409 }.count == 99)
        let source = try #require(try await nodes[2].client.get("/v1/sources/slow").json["id"]?.stringValue)
        let listed = try await nodes[2].client.get("/v1/syncs?source_id=\(source)").json["items"]?.arrayValue ?? []
        #expect(listed.count == 1)
        #expect(listed.allSatisfy { $0["source_id"] == .string(source) })
        try await stopAll(nodes)
    }

    @Test func sigkillTheNodeRunningASyncAnotherNodeResumesItWithinTheLeasePlusTwoSeconds() async throws {
        let dir = try TemporaryDirectory("cluster-kill")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("kill")
        let lease = 2.0
        let nodes = try await startNodes(3, database: database, directory: dir, extra: ["--lease-seconds", "2", "--workers", "2"])
        try await createSlowSource(nodes[0].client, records: 2000, pageSize: 100, delayMs: 300)
        let id = try #require(try await nodes[0].client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        let owner = try await runningNode(nodes[0].client, id)
        let victim = try #require(nodes.first { $0.log.contains("node \(owner)") })
        let survivor = try #require(nodes.first { $0 !== victim })
        // 20 pages of 300 ms: well over half the sync is still to run when the node dies.
        #expect((try await sync(survivor.client, id)["progress"]?["pages"]?.intValue ?? 20) < 15)
        await victim.kill()
        let killedAt = ContinuousClock.now
        let takeover = try await eventually(timeout: .seconds(30), every: .milliseconds(10)) { () -> (String, Duration)? in
            let attempts = try await sync(survivor.client, id)["attempts"]?.arrayValue ?? []
            guard attempts.count >= 2, let node = attempts.last?["node"]?.stringValue else { return nil }
            return (node, ContinuousClock.now - killedAt)
        }
        print("cluster: takeover after SIGKILL took \(takeover.1) (lease \(lease) s)")
        #expect(takeover.0 != owner)
        #expect(takeover.1 < .seconds(lease + 2))

        let done = try await eventually(timeout: .seconds(60), every: .milliseconds(50)) { () -> JSONValue? in
            let s = try await sync(survivor.client, id)
            return s["status"]?.stringValue == "completed" ? s : nil
        }
        #expect(done["result"]?["records_created"] == .number(2000))
        #expect(done["result"]?["records_read"] == .number(2000))
        #expect(done["result"]?["records_updated"] == .number(0))
        #expect(done["result"]?["pages"] == .number(20))
        let keys = try await syntheticRecordKeys(survivor.client, source: "slow")
        #expect(keys.count == 2000)
        #expect(Set(keys).count == 2000)
        // The dead node shows as stale in /v1/health only after 15 s; it is listed already.
        let health = try await survivor.client.get("/v1/health").json
        let workers = health["checks"]?.arrayValue?.first { $0["name"] == .string("workers") }
        #expect((workers?["nodes"]?.arrayValue ?? []).contains { $0["id"] == .string(owner) })
        try await stopAll(nodes.filter { $0 !== victim })
    }

    @Test func cancelSentToOneNodeStopsTheSyncRunningOnAnother() async throws {
        let dir = try TemporaryDirectory("cluster-cancel")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("cancel")
        let nodes = try await startNodes(3, database: database, directory: dir, extra: ["--workers", "1"])
        try await createSlowSource(nodes[0].client, records: 1000, pageSize: 10, delayMs: 300)
        let id = try #require(try await nodes[0].client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        let owner = try await runningNode(nodes[0].client, id)
        let other = try #require(nodes.first { !$0.log.contains("node \(owner)") })
        let start = ContinuousClock.now
        #expect(try await other.client.post("/v1/syncs/\(id)/cancel").status == 202)
        _ = try await eventually(timeout: .seconds(5), every: .milliseconds(5)) { () -> Bool? in
            try await sync(other.client, id)["status"]?.stringValue == "cancelled" ? true : nil
        }
        let took = ContinuousClock.now - start
        print("cluster: cancel via another node took \(took)")
        #expect(took < .seconds(5))
        try await stopAll(nodes)
    }

    @Test func fiveHundredSyncsOverThreeNodesEachRunOnceAndNeverOnTwoNodes() async throws {
        let fixture = FixtureUpstream(items: 3)
        try await fixture.start()
        fixture.setDelay(seconds: 0.02)
        let dir = try TemporaryDirectory("cluster-500")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("many")
        let nodes = try await startNodes(3, database: database, directory: dir, extra: ["--workers", "4"])
        let count = 500
        // Create the sources, then trigger them all at once, spread over the nodes.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<count {
                let client = nodes[i % 3].client
                group.addTask {
                    let r = try await client.post("/v1/sources", #"""
                        {"name": "s\#(i)", "kind": "http-json", "config": {"url": "\#(fixture.baseURL)/none?tag=s\#(i)", "records_path": "/rows", "primary_key": "id"}}
                        """#)
                    #expect(r.status == 201, "\(r.text)")
                }
                if i % 20 == 19 { try await group.waitForAll() }
            }
        }
        let ids = try await withThrowingTaskGroup(of: String?.self) { group in
            for i in 0..<count {
                let client = nodes[(i + 1) % 3].client
                group.addTask { try await client.post("/v1/sources/s\(i)/syncs").json["id"]?.stringValue }
            }
            return try await group.reduce(into: [String]()) { if let id = $1 { $0.append(id) } }
        }
        #expect(ids.count == count)
        let all = try await eventually(timeout: .seconds(120), every: .milliseconds(200)) { () -> [JSONValue]? in
            var items: [JSONValue] = []
            var cursor: String?
            repeat {
                let page = try await nodes[0].client.get("/v1/syncs?limit=1000" + (cursor.map { "&cursor=\($0)" } ?? "")).json
                items += page["items"]?.arrayValue ?? []
                cursor = page["next_cursor"]?.stringValue
            } while cursor != nil
            return items.count == count && items.allSatisfy({ $0["status"] == .string("completed") }) ? items : nil
        }
        // The attempt log: one attempt per sync, on one node; the three nodes shared the work.
        var perNode: [String: Int] = [:]
        for item in all {
            let attempts = item["attempts"]?.arrayValue ?? []
            #expect(attempts.count == 1, "\(item)")
            perNode[attempts.first?["node"]?.stringValue ?? "?", default: 0] += 1
            #expect(item["result"]?["records_created"] == .number(3))
        }
        #expect(Set(perNode.keys) == ["n1", "n2", "n3"], "\(perNode)")
        // The upstream's own log: every source was fetched exactly once, so no sync ran twice.
        var fetches: [String: Int] = [:]
        for request in fixture.requests(path: "/none") {
            let tag = request.query.split(separator: "&").first { $0.hasPrefix("tag=") }.map { String($0.dropFirst(4)) } ?? "?"
            fetches[tag, default: 0] += 1
        }
        #expect(fetches.count == count)
        #expect(fetches.values.allSatisfy { $0 == 1 }, "\(fetches.filter { $0.value != 1 })")
        print("cluster: 500 syncs per node \(perNode)")
        try await stopAll(nodes)
        await fixture.stop()
    }

    @Test func killingTheListeningConnectionStrandsNothing() async throws {
        let dir = try TemporaryDirectory("cluster-listen")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("listen")
        let worker = try await TributaryProcess(serve: ["--database", database, "--node-id", "w", "--workers", "2"], directory: dir, name: "w")
        let api = try await TributaryProcess(serve: ["--database", database, "--node-id", "a", "--role", "api"], directory: dir, name: "a")
        @Sendable func killListeners() async throws -> Int {
            let out = try await PostgresCluster.psql(database, """
                SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()
                """)
            return Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        _ = try await eventually { () -> Bool? in try await killListeners() >= 1 ? true : nil }
        // Queued through the other node right after the worker lost its notifications: it still runs.
        try await createSlowSource(api.client, name: "quick", records: 10, pageSize: 5, delayMs: 0)
        let quick = try #require(try await api.client.post("/v1/sources/quick/syncs").json["id"]?.stringValue)
        _ = try await eventually(timeout: .seconds(10), every: .milliseconds(20)) { () -> Bool? in
            try await sync(api.client, quick)["status"]?.stringValue == "completed" ? true : nil
        }
        // A cancel through the other node while the worker's listener is down again: the database poll carries it.
        try await createSlowSource(api.client, name: "slow", records: 100, pageSize: 10, delayMs: 60_000)
        let slow = try #require(try await api.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        _ = try await eventually { () -> Bool? in try await sync(api.client, slow)["status"]?.stringValue == "running" ? true : nil }
        _ = try await eventually { () -> Bool? in try await killListeners() >= 1 ? true : nil }
        let start = ContinuousClock.now
        #expect(try await api.client.post("/v1/syncs/\(slow)/cancel").status == 202)
        _ = try await eventually(timeout: .seconds(5), every: .milliseconds(10)) { () -> Bool? in
            try await sync(api.client, slow)["status"]?.stringValue == "cancelled" ? true : nil
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(worker.log.contains("listening for events failed"), "the test did not break the listener")
        try await stopAll([worker, api])
    }

    /// A database down for 9 s under 1 s leases, longer than the runner retries its commit
    /// (two leases) and then the end of its attempt (two more, plus at most a 2 s backoff):
    /// the runner cannot record anything, so the rescuer hands the sync back once the database
    /// answers (its lease long expired), never `failed`; the sync resumes at its checkpoint and
    /// completes with exact counts.
    @Test func aDatabaseDownPastTheRunnersRetriesLeavesTheSyncToTheRescuer() async throws {
        let cluster = try await PostgresCluster.start()
        let dir = try TemporaryDirectory("cluster-outage")
        defer { dir.remove() }
        let database = try await cluster.createDatabase("outage")
        let nodes = try await startNodes(1, database: database, directory: dir, extra: ["--lease-seconds", "1", "--workers", "1"])
        try await createSlowSource(nodes[0].client, records: 2000, pageSize: 100, delayMs: 200)
        let id = try #require(try await nodes[0].client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        _ = try await runningNode(nodes[0].client, id)
        try await cluster.stopServer()
        try await Task.sleep(for: .seconds(9))
        try await cluster.startServer()
        let done = try await eventually(timeout: .seconds(90), every: .milliseconds(100)) { () -> JSONValue? in
            let s = try? await sync(nodes[0].client, id)
            return s?["status"]?.stringValue == "completed" ? s : nil
        }
        #expect(done["result"]?["records_created"] == .number(2000))
        #expect(done["result"]?["records_read"] == .number(2000))
        #expect(done["result"]?["pages"] == .number(20))
        let attempts = done["attempts"]?.arrayValue ?? []
        #expect(attempts.count >= 2, "\(attempts)")
        #expect(attempts.dropLast().allSatisfy { $0["status"] == .string("queued") }, "\(attempts)")
        // Taken back by the rescuer: the runner gave up recording the end of its attempt.
        #expect(attempts.count == 2, "\(attempts)")
        #expect(attempts.first?["error"]?["message"]?.stringValue?.contains("lease expired") == true, "\(attempts)")
        #expect(nodes[0].log.contains("could not record the end of the attempt"))
        #expect(nodes[0].isRunning)
        try await stopAll(nodes)
        try? await cluster.stopServer()
    }

    @Test func restartingPostgreSQLMidSyncLosesNothingAndCrashesNothing() async throws {
        let cluster = try await PostgresCluster.start()
        let dir = try TemporaryDirectory("cluster-restart")
        defer { dir.remove() }
        let database = try await cluster.createDatabase("restart")
        let nodes = try await startNodes(2, database: database, directory: dir, extra: ["--lease-seconds", "6", "--workers", "2"])
        // 30 pages of 300 ms: about 9 s, so the sync is still running when the server stops.
        try await createSlowSource(nodes[0].client, records: 3000, pageSize: 100, delayMs: 300)
        let id = try #require(try await nodes[0].client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
        _ = try await runningNode(nodes[0].client, id)
        let beforeStop = try await sync(nodes[0].client, id)
        #expect(beforeStop["status"] == .string("running"))
        #expect((beforeStop["progress"]?["pages"]?.intValue ?? 30) < 25, "\(beforeStop["progress"] ?? .null)")
        let stoppedAt = Date()
        try await cluster.stopServer()
        // While the database is down: readiness says so, liveness does not.
        let ready = try await nodes[1].client.get("/readyz")
        #expect(ready.status == 503)
        #expect(try await nodes[1].client.get("/healthz").status == 200)
        try await Task.sleep(for: .seconds(2))
        try await cluster.startServer()
        let done = try await eventually(timeout: .seconds(90), every: .milliseconds(100)) { () -> JSONValue? in
            let s = try await sync(nodes[0].client, id)
            return s["status"]?.stringValue == "completed" ? s : nil
        }
        #expect(done["result"]?["records_created"] == .number(3000))
        #expect(done["result"]?["records_read"] == .number(3000))
        #expect(done["result"]?["records_updated"] == .number(0))
        #expect(done["result"]?["pages"] == .number(30))
        #expect(done["error"] == .null)
        // It finished after the database went down, so it ran through the outage.
        let finished = try #require(done["finished_at"]?.stringValue.flatMap(Timestamp.parse))
        #expect(finished > stoppedAt)
        // Every record, each once, each byte as the generator made it.
        let keys = try await syntheticRecordKeys(nodes[1].client, source: "slow")
        #expect(keys.count == 3000)
        #expect(Set(keys).count == 3000)
        #expect(nodes.allSatisfy { $0.isRunning })
        #expect(try await nodes[1].client.get("/readyz").status == 200)
        try await stopAll(nodes)
        try? await cluster.stopServer()
    }
}
