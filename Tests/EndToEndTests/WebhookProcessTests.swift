import Foundation
import Testing
import SyncCore
import TestSupport

/// Webhooks through the real binary: a node killed in the middle of a delivery loses
/// nothing, and three nodes on one PostgreSQL database deliver each event once.
@Suite("Webhooks through the real binary", .serialized)
struct WebhookProcessTests {
    func source(_ name: String, hook: String) -> String {
        #"{"name": "\#(name)", "kind": "synthetic", "config": {"records": 3, "page_size": 3}, "notify": [{"url": "\#(hook)", "secret": "pssst"}]}"#
    }

    /// The receiver holds the first POST open. A second node on the same database runs
    /// beside the first while that try hangs and does not take the delivery (it is leased);
    /// the first node is SIGKILLed mid-try, and the second takes the delivery only once the
    /// dead node's lease (the 15 s timeout + 5 s) has ended; the receiver gets it, signed,
    /// with the same delivery id.
    @Test func aNodeKilledMidDeliveryLosesNothing() async throws {
        let receiver = FixtureUpstream()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        receiver.inject(.hang(seconds: 60), path: "/hooks")
        let dir = try TemporaryDirectory("e2e-webhook-kill")
        defer { dir.remove() }
        let args = ["--database", "sqlite:w.sqlite", "--workers", "1", "--webhook-timeout", "15"]
        let a = try await TributaryProcess(serve: args + ["--node-id", "a"], directory: dir, name: "a")
        #expect(try await a.client.post("/v1/sources", source("k", hook: receiver.baseURL + "/hooks/k")).status == 201)
        let id = try #require(try await a.client.post("/v1/sources/k/syncs").json["id"]?.stringValue)
        let first = try await eventually(timeout: .seconds(20)) { receiver.requests(path: "/hooks/k").first }
        // Node b runs while a's try hangs: the delivery is due but leased, so b leaves it.
        let b = try await TributaryProcess(serve: args + ["--node-id", "b"], directory: dir, name: "b")
        try await Task.sleep(for: .seconds(4))
        #expect(receiver.requests(path: "/hooks/k").count == 1, "a second node tried a delivery another node holds")
        try #require(ContinuousClock.now - first.at < .seconds(13), "a's try must still be in flight when it is killed")
        await a.kill()
        let delivered = try await eventually(timeout: .seconds(60), every: .milliseconds(200)) { () -> JSONValue? in
            let item = try await b.client.get("/v1/syncs/\(id)/deliveries").json["items"]?.arrayValue?.first
            return item?["status"] == .string("delivered") ? item : nil
        }
        let requests = receiver.requests(path: "/hooks/k")
        #expect(requests.count == 2, "the try the kill cut short, and the one after")
        if requests.count == 2 {
            let gap = requests[1].at - requests[0].at
            #expect(gap >= .seconds(19), "b took the delivery \(gap) after a's try began, before a's 20 s lease ended")
        }
        let receipts = requests.map(WebhookReceipt.init)
        #expect(Set(receipts.compactMap(\.deliveryID)) == [try #require(delivered["id"]?.stringValue)])
        #expect(receipts.allSatisfy { $0.signatureIsValid(secret: "pssst") && $0.event == "sync.completed" })
        #expect(delivered["attempts"] == .number(2))
        #expect(!b.log.contains("pssst") && !a.log.contains("pssst"))
        #expect(try await b.terminate() == 0)
    }

    /// Three nodes on one PostgreSQL database, 30 sources with a webhook: every completion is
    /// delivered exactly once (by delivery id), whichever node ran the sync or delivered it.
    @Test func threeNodesDeliverEachEventOnce() async throws {
        let receiver = FixtureUpstream()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let dir = try TemporaryDirectory("e2e-webhook-cluster")
        defer { dir.remove() }
        let database = try await PostgresCluster.shared().createDatabase("hooks")
        var nodes: [TributaryProcess] = []
        for n in 0..<3 {
            nodes.append(try await TributaryProcess(serve: ["--database", database, "--workers", "4", "--node-id", "n\(n)"],
                                                    directory: dir, name: "n\(n)"))
        }
        let count = 30
        for i in 0..<count {
            #expect(try await nodes[i % 3].client.post("/v1/sources", source("s\(i)", hook: receiver.baseURL + "/hooks/c")).status == 201)
        }
        for i in 0..<count { #expect(try await nodes[(i + 1) % 3].client.post("/v1/sources/s\(i)/syncs").status == 202) }
        _ = try await eventually(timeout: .seconds(60), every: .milliseconds(200)) {
            receiver.requests(path: "/hooks/c").count >= count ? true : nil
        }
        try await Task.sleep(for: .seconds(2))  // a duplicate would arrive by now
        let receipts = receiver.requests(path: "/hooks/c").map(WebhookReceipt.init)
        #expect(receipts.count == count)
        #expect(Set(receipts.compactMap(\.deliveryID)).count == count)
        #expect(Set(receipts.compactMap { $0.json["sync"]?["source_id"]?.stringValue }).count == count)
        #expect(receipts.allSatisfy { $0.signatureIsValid(secret: "pssst") })
        for node in nodes { #expect(try await node.terminate() == 0) }
    }
}
