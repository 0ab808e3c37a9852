import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncConnectors
import SyncCore
import SyncEngine
import SyncStore
import TestSupport

/// Webhooks (docs/webhooks.md): the outbox is written with the status change, deliveries are
/// signed, retried with backoff, shown per sync, and their URLs vetted at create.
@Suite("Webhooks")
struct WebhookTests {
    static let fast = WebhookPolicy(pollInterval: .milliseconds(100), firstRetryDelay: 0.2, maxRetryDelay: 1, timeout: 5)

    func withReceiver<T: Sendable>(_ body: @Sendable (FixtureUpstream) async throws -> T) async throws -> T {
        let receiver = FixtureUpstream()
        try await receiver.start()
        do {
            let result = try await body(receiver)
            await receiver.stop()
            return result
        } catch {
            await receiver.stop()
            throw error
        }
    }

    func hooks(_ receiver: FixtureUpstream, _ path: String) -> [WebhookReceipt] {
        receiver.requests(path: path).map(WebhookReceipt.init)
    }

    @Test(arguments: StoreBackend.allCases)
    func aCompletedSyncIsDeliveredOnceSignedAndShown(_ backend: StoreBackend) async throws {
        try await withReceiver { receiver in
            try await TestNode(backend: backend, workers: 1, pollInterval: .milliseconds(100), webhooks: Self.fast).test { client in
                let created = try await client.call(.post, "/v1/sources", #"""
                    {"name": "w", "kind": "synthetic", "config": {"records": 7, "page_size": 3},
                     "notify": [{"url": "\#(receiver.baseURL)/hooks/a", "events": ["completed"], "secret": "s3cret-value"}]}
                    """#)
                #expect(created.status == .created)
                let shown = String(buffer: created.body)
                #expect(!shown.contains("s3cret-value"))
                #expect(created.json["notify"]?.arrayValue?.first?["secret"] == .string("***"))
                #expect(created.json["notify"]?.arrayValue?.first?["events"] == .array([.string("completed")]))
                let id = try #require(try await client.call(.post, "/v1/sources/w/syncs").json["id"]?.stringValue)
                let receipts = try await eventually { () -> [WebhookReceipt]? in
                    let got = hooks(receiver, "/hooks/a")
                    return got.isEmpty ? nil : got
                }
                let receipt = try #require(receipts.first)
                #expect(receipt.signatureIsValid(secret: "s3cret-value"))
                #expect(!receipt.signatureIsValid(secret: "another"))
                #expect(receipt.event == "sync.completed")
                #expect(receipt.json["source"]?["name"] == .string("w"))
                #expect(receipt.json["sync"]?["id"] == .string(id))
                #expect(receipt.json["sync"]?["status"] == .string("completed"))
                #expect(receipt.json["sync"]?["progress"]?["records_created"] == .number(7))
                #expect(receipt.json["sync"]?["attempts"]?.arrayValue?.count == 1)
                #expect(receipt.request.headers["x-tributary-delivery"] == receipt.deliveryID)
                #expect(receipt.request.headers["x-tributary-event"] == "sync.completed")
                #expect(receipt.request.headers["content-type"] == "application/json")
                // The delivery shows as delivered; its secret and body never do.
                let deliveries = try await eventually { () -> [JSONValue]? in
                    let items = try await client.call(.get, "/v1/syncs/\(id)/deliveries").json["items"]?.arrayValue ?? []
                    return items.first?["status"] == .string("delivered") ? items : nil
                }
                #expect(deliveries.count == 1)
                #expect(deliveries[0]["id"]?.stringValue == receipt.deliveryID)
                #expect(deliveries[0]["attempts"] == .number(1))
                #expect(deliveries[0]["response_status"] == .number(204))
                #expect(deliveries[0]["event"] == .string("sync.completed"))
                let listing = String(buffer: try await client.call(.get, "/v1/syncs/\(id)/deliveries").body)
                #expect(!listing.contains("s3cret-value"))
                // Nothing more arrives: one event, one delivery.
                try await Task.sleep(for: .milliseconds(800))
                #expect(hooks(receiver, "/hooks/a").count == 1)
                #expect(try await client.call(.get, "/v1/syncs/syn_01M8C1VWZ6SSAN250T5XTGAJ2F/deliveries").status == .notFound)
            }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aReceiverFailingThreeTimesGetsTheSameBodyOnTheFourthTry(_ backend: StoreBackend) async throws {
        try await withReceiver { receiver in
            receiver.inject(.status(500), path: "/hooks", times: 3)
            try await TestNode(backend: backend, workers: 1, pollInterval: .milliseconds(100), webhooks: Self.fast).test { client in
                _ = try await client.createSource("r", records: 2, pageSize: 2,
                                                  extra: #", "notify": [{"url": "\#(receiver.baseURL)/hooks/r", "secret": "k"}]"#)
                let id = try #require(try await client.call(.post, "/v1/sources/r/syncs").json["id"]?.stringValue)
                let delivered = try await eventually(timeout: .seconds(30)) { () -> JSONValue? in
                    let item = try await client.call(.get, "/v1/syncs/\(id)/deliveries").json["items"]?.arrayValue?.first
                    return item?["status"] == .string("delivered") ? item : nil
                }
                #expect(delivered["attempts"] == .number(4))
                let receipts = hooks(receiver, "/hooks/r")
                #expect(receipts.count == 4)
                #expect(Set(receipts.map(\.request.body)).count == 1, "every try sends the same bytes")
                #expect(Set(receipts.compactMap(\.deliveryID)).count == 1)
                #expect(receipts.allSatisfy { $0.signatureIsValid(secret: "k") })
                // Backoff: the tries are spread out, not fired back to back.
                let gaps = zip(receipts.dropFirst(), receipts).map { ($0.request.at - $1.request.at) }
                #expect(gaps.allSatisfy { $0 >= .milliseconds(150) }, "\(gaps)")
            }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func eachWebhookGetsTheEventsItChoseWithTheSyncAsItThenStood(_ backend: StoreBackend) async throws {
        try await withReceiver { receiver in
            try await TestNode(backend: backend, workers: 1, pollInterval: .milliseconds(100), webhooks: Self.fast).test { client in
                let created = try await client.call(.post, "/v1/sources", #"""
                    {"name": "f", "kind": "synthetic", "config": {"records": 10, "page_size": 5, "fail_every_n_pages": 1},
                     "retry": {"max_attempts": 2, "initial_delay_seconds": 0.2, "max_delay_seconds": 1},
                     "notify": [{"url": "\#(receiver.baseURL)/hooks/all"},
                                {"url": "\#(receiver.baseURL)/hooks/failed", "events": ["failed"]}]}
                    """#)
                #expect(created.status == .created, "\(String(buffer: created.body))")
                let id = try #require(try await client.call(.post, "/v1/sources/f/syncs").json["id"]?.stringValue)
                // Deliveries due together go out together: they may arrive in either order
                // (docs/webhooks.md); the body's created_at orders them.
                let all = try await eventually { () -> [WebhookReceipt]? in
                    let got = hooks(receiver, "/hooks/all")
                    return got.count >= 2 ? got : nil
                }.sorted { ($0.json["created_at"]?.stringValue ?? "") < ($1.json["created_at"]?.stringValue ?? "") }
                #expect(all.map(\.event) == ["sync.retrying", "sync.failed"])
                // The retrying event carries the sync as it was then, whenever it was sent.
                #expect(all[0].json["sync"]?["status"] == .string("retrying"))
                #expect(all[0].json["sync"]?["attempts"]?.arrayValue?.count == 1)
                #expect(all[0].json["sync"]?["error"]?["code"] != .null)
                #expect(all[1].json["sync"]?["status"] == .string("failed"))
                #expect(all[1].json["sync"]?["attempts"]?.arrayValue?.count == 2)
                #expect(all.allSatisfy { $0.request.headers["x-tributary-signature"] == nil }, "no secret, no signature")
                let failed = try await eventually { () -> [WebhookReceipt]? in
                    let got = hooks(receiver, "/hooks/failed")
                    return got.isEmpty ? nil : got
                }
                #expect(failed.map(\.event) == ["sync.failed"])
                #expect(failed[0].json["sync"]?["id"] == .string(id))

                // A queued sync cancelled: `cancelled`, straight from the API's transaction.
                _ = try await client.createSource("c", records: 1, extra: #", "notify": [{"url": "\#(receiver.baseURL)/hooks/c"}]"#)
                #expect(try await client.call(.post, "/v1/sources/c/pause").status == .ok)
                let queued = try #require(try await client.call(.post, "/v1/sources/c/syncs").json["id"]?.stringValue)
                #expect(try await client.call(.post, "/v1/syncs/\(queued)/cancel").status.code < 300)
                let cancelled = try await eventually { () -> [WebhookReceipt]? in
                    let got = hooks(receiver, "/hooks/c")
                    return got.isEmpty ? nil : got
                }
                #expect(cancelled.map(\.event) == ["sync.cancelled"])
                #expect(cancelled[0].json["sync"]?["status"] == .string("cancelled"))
            }
        }
    }

    /// Webhooks added while a sync runs hear of its end; removed ones do not.
    @Test(arguments: StoreBackend.allCases)
    func webhooksChangedMidSyncApplyToItsEnd(_ backend: StoreBackend) async throws {
        try await withReceiver { receiver in
            try await TestNode(backend: backend, workers: 2, pollInterval: .milliseconds(100), webhooks: Self.fast).test { client in
                _ = try await client.call(.post, "/v1/sources", #"{"name": "late", "kind": "synthetic", "config": {"records": 6, "page_size": 2, "delay_ms_per_page": 5000}}"#)
                _ = try await client.call(.post, "/v1/sources", #"{"name": "gone", "kind": "synthetic", "config": {"records": 6, "page_size": 2, "delay_ms_per_page": 5000}, "notify": [{"url": "\#(receiver.baseURL)/hooks/gone"}]}"#)
                let late = try #require(try await client.call(.post, "/v1/sources/late/syncs").json["id"]?.stringValue)
                let gone = try #require(try await client.call(.post, "/v1/sources/gone/syncs").json["id"]?.stringValue)
                #expect(try await client.call(.patch, "/v1/sources/late", #"{"notify": [{"url": "\#(receiver.baseURL)/hooks/late"}]}"#).status == .ok)
                #expect(try await client.call(.patch, "/v1/sources/gone", #"{"notify": null}"#).status == .ok)
                // Pages take 5 s each: both syncs are still active as the patches land, on a loaded machine too.
                for id in [late, gone] {
                    #expect(try await client.call(.get, "/v1/syncs/\(id)").json["status"] != .string("completed"), "finished before the patch")
                }
                for id in [late, gone] {
                    _ = try await eventually(timeout: .seconds(60)) { try await client.call(.get, "/v1/syncs/\(id)").json["status"] == .string("completed") ? true : nil }
                }
                _ = try await eventually { receiver.requests(path: "/hooks/late").isEmpty ? nil : true }
                try await Task.sleep(for: .milliseconds(500))
                #expect(receiver.requests(path: "/hooks/late").map { WebhookReceipt($0).event } == ["sync.completed"])
                #expect(receiver.requests(path: "/hooks/gone").isEmpty)
            }
        }
    }

    /// A prune keeps a finished sync while a webhook delivery of it is pending (it used to
    /// delete the delivery with the sync, silently); once the delivery has ended, the next
    /// prune takes both.
    @Test(arguments: StoreBackend.allCases)
    func aPruneKeepsASyncWhoseDeliveryIsPending(_ backend: StoreBackend) async throws {
        try await withReceiver { receiver in
            receiver.inject(.status(503), path: "/hooks", times: 10_000)
            try await TestNode(backend: backend, workers: 1, pollInterval: .milliseconds(100), webhooks: Self.fast).test { client in
                _ = try await client.createSource("p", records: 1, extra: #", "notify": [{"url": "\#(receiver.baseURL)/hooks/p"}]"#)
                _ = try await client.createSource("quiet", records: 1)
                let id = try #require(try await client.runSync("p")["id"]?.stringValue)
                let other = try #require(try await client.runSync("quiet")["id"]?.stringValue)
                _ = try await eventually { receiver.requests(path: "/hooks/p").isEmpty ? nil : true }
                let everything = #"{"older_than_seconds": 0, "keep_last_per_source": 0}"#
                let first = try await client.call(.post, "/v1/maintenance/prune", everything)
                #expect(first.json["deleted_syncs"] == .number(1), "only the sync without a pending delivery: \(first.json)")
                #expect(try await client.call(.get, "/v1/syncs/\(other)").status == .notFound)
                #expect(try await client.call(.get, "/v1/syncs/\(id)").status == .ok)
                let pending = try await client.call(.get, "/v1/syncs/\(id)/deliveries").json["items"]?.arrayValue?.first
                #expect(pending?["status"] == .string("pending"), "\(pending ?? .null)")
                receiver.clearFaults()
                _ = try await eventually(timeout: .seconds(20)) { () -> Bool? in
                    let item = try await client.call(.get, "/v1/syncs/\(id)/deliveries").json["items"]?.arrayValue?.first
                    return item?["status"] == .string("delivered") ? true : nil
                }
                #expect(try await client.call(.post, "/v1/maintenance/prune", everything).json["deleted_syncs"] == .number(1))
                #expect(try await client.call(.get, "/v1/syncs/\(id)").status == .notFound)
            }
        }
    }

    /// A receiver is an origin: scheme and host in lowercase, the port spelled out; path,
    /// query, fragment and user info do not make another receiver, a port or a scheme does.
    @Test func aReceiverIsTheURLsOrigin() {
        let same = ["http://Example.COM/a", "HTTP://example.com:80/b?x=1", "http://u:p@example.com/c#f", "http://example.com"]
        #expect(Set(same.map(WebhookTarget.receiver(of:))) == ["http://example.com:80"])
        #expect(WebhookTarget.receiver(of: "https://example.com/") == "https://example.com:443")
        #expect(WebhookTarget.receiver(of: "http://example.com:8080/") == "http://example.com:8080")
        #expect(WebhookTarget.receiver(of: "http://[::1]:9/x") == "http://[::1]:9")
        #expect(WebhookTarget.receiver(of: "http://127.0.0.1:9/x") != WebhookTarget.receiver(of: "http://127.0.0.2:9/x"))
        // One address spelled many ways is one receiver (two spellings took every slot).
        let loopback = ["http://127.0.0.1:9/", "http://127.1:9/a", "http://0x7f.0.0.1:9/", "http://2130706433:9/", "http://[::ffff:127.0.0.1]:9/",
                        "http://[::FFFF:7f00:1]:9/", "http://0177.0.0.1:9/"]
        #expect(Set(loopback.map(WebhookTarget.receiver(of:))) == ["http://127.0.0.1:9"])
        let six = ["http://[::1]:9/", "http://[0:0:0:0:0:0:0:1]:9/", "http://[::0:1]:9/", "http://[::1%25lo]:9/"]
        #expect(Set(six.map(WebhookTarget.receiver(of:))) == ["http://[::1]:9"])
        #expect(WebhookTarget.receiver(of: "http://Example.com.:9/") == "http://example.com:9")
        #expect(WebhookTarget.receiver(of: "http://cafe.face:9/") == "http://cafe.face:9", "a name of hex letters stays a name")
    }

    /// One receiver that accepts and never answers costs only its own deliveries: with 72 of
    /// its deliveries hanging for the 5 s timeout, another receiver's delivery goes out at once
    /// (a batch of 8 once waited for its slowest member, 15 s behind the hung receiver).
    @Test func aHungReceiverCostsOnlyItsOwnDeliveries() async throws {
        try await withReceiver { hung in
            try await withReceiver { healthy in
                hung.inject(.hang(seconds: 30), path: "/hooks", times: 10_000)
                try await TestNode(workers: 4, pollInterval: .milliseconds(50), webhooks: Self.fast).test { client in
                    // Its URLs differ in path, query and the host's case: one receiver all the
                    // same (counted per URL, ten hooks of distinct URLs took every slot).
                    let upper = hung.baseURL.replacingOccurrences(of: "http://", with: "HTTP://")
                    for i in 0..<24 {
                        let hooks = (0..<3).map { j in #"{"url": "\#(j == 2 ? upper : hung.baseURL)/hooks/h\#(i)?n=\#(j)"}"# }
                        _ = try await client.createSource("h\(i)", records: 1, extra: #", "notify": [\#(hooks.joined(separator: ","))]"#)
                        #expect(try await client.call(.post, "/v1/sources/h\(i)/syncs").status == .accepted)
                    }
                    _ = try await eventually(timeout: .seconds(20)) { hung.requests.count >= 2 ? true : nil }
                    _ = try await client.createSource("ok", records: 1, extra: #", "notify": [{"url": "\#(healthy.baseURL)/hooks/ok"}]"#)
                    let done = try await client.runSync("ok")
                    let finished = try #require(done["finished_at"]?.stringValue.flatMap(Timestamp.parse))
                    let delivered = try await eventually(timeout: .seconds(20), every: .milliseconds(20)) { () -> Date? in
                        healthy.requests(path: "/hooks/ok").isEmpty ? nil : Date()
                    }
                    #expect(delivered.timeIntervalSince(finished) < 2, "the healthy receiver waited \(delivered.timeIntervalSince(finished)) s behind the hung one")
                }
            }
        }
    }

    /// A failed try names the receiver, not an upstream: a receiver that closes the connection
    /// without answering, and a port that refuses it.
    @Test func aFailedTryNamesTheReceiver() async throws {
        let closing = try RawResponder(answer: "")
        defer { closing.stop() }
        let refusing = try RawResponder(answer: "")
        let refusedURL = refusing.baseURL
        refusing.stop()
        try await TestNode(workers: 1, pollInterval: .milliseconds(100), webhooks: Self.fast).test { client in
            for (name, url) in [("closing", closing.baseURL), ("refusing", refusedURL)] {
                _ = try await client.createSource(name, records: 1, extra: #", "notify": [{"url": "\#(url)/hooks"}]"#)
                let id = try #require(try await client.call(.post, "/v1/sources/\(name)/syncs").json["id"]?.stringValue)
                let tried = try await eventually { () -> String? in
                    try await client.call(.get, "/v1/syncs/\(id)/deliveries").json["items"]?.arrayValue?.first?["last_error"]?.stringValue
                }
                #expect(tried.contains("the receiver") && !tried.contains("upstream"), "\(name): \(tried)")
            }
        }
    }

    /// A receiver that never accepts: the delivery is given up once its window has passed,
    /// and the tries are counted in metrics.
    @Test func aDeliveryIsGivenUpAfterItsWindowAndCounted() async throws {
        try await withReceiver { receiver in
            receiver.inject(.status(503), path: "/hooks", times: 1000)
            var policy = Self.fast
            // Long enough for a second try (0.2 s after the first) however late the first one
            // runs on a loaded machine; short enough for a test.
            policy.giveUpAfter = 5
            try await TestNode(workers: 1, pollInterval: .milliseconds(100), webhooks: policy).test { client in
                _ = try await client.createSource("g", records: 1, extra: #", "notify": [{"url": "\#(receiver.baseURL)/hooks/g"}]"#)
                let id = try #require(try await client.call(.post, "/v1/sources/g/syncs").json["id"]?.stringValue)
                let failed = try await eventually { () -> JSONValue? in
                    let item = try await client.call(.get, "/v1/syncs/\(id)/deliveries").json["items"]?.arrayValue?.first
                    return item?["status"] == .string("failed") ? item : nil
                }
                let tries = try #require(failed["attempts"]?.intValue)
                #expect(tries >= 2 && tries == receiver.requests(path: "/hooks/g").count)
                #expect(failed["response_status"] == .number(503))
                #expect(failed["last_error"]?.stringValue?.contains("given up") == true)
                #expect(failed["next_attempt_at"] == .null)
                let metrics = String(buffer: try await client.call(.get, "/metrics").body)
                #expect(metrics.contains(#"tributary_webhook_deliveries_total{result="failed"} 1"#), "\(metrics)")
                #expect(metrics.contains(#"tributary_webhook_deliveries_total{result="retrying"} \#(tries - 1)"#))
            }
        }
    }

    @Test func webhookURLsAndSecretsAreCheckedAtTheDoor() async throws {
        let policy = EgressPolicy(deny: [EgressPolicy.Rule("10.0.0.0/8")!])
        try await withReceiver { receiver in
        let node = try await TestNode(workers: 1, pollInterval: .milliseconds(100), webhooks: Self.fast, egress: policy)
        try await node.test { client in
            func create(_ notify: String) async throws -> TestResponse {
                try await client.call(.post, "/v1/sources", #"{"name": "x", "kind": "synthetic", "config": {"records": 1}, "notify": \#(notify)}"#)
            }
            func field(_ r: TestResponse) -> String? { r.json["errors"]?.arrayValue?.first?["field"]?.stringValue }
            let blocked = try await create(#"[{"url": "http://169.254.169.254/latest"}]"#)
            #expect(blocked.status == .unprocessableContent)
            #expect(field(blocked) == "notify[0].url")
            #expect(field(try await create(#"[{"url": "http://127.0.0.1/ok"}, {"url": "http://10.1.2.3/hook"}]"#)) == "notify[1].url")
            #expect(field(try await create(#"[{"url": "http://[::ffff:169.254.169.254]/x"}]"#)) == "notify[0].url")
            for bad in [#"[{"url": "ftp://example.com/x"}]"#, #"[{"url": "/relative"}]"#, #"[{"url": ""}]"#, #"[{}]"#,
                        #"[{"url": "http://u:p@127.0.0.1/x"}]"#,
                        #"[{"url": "http://127.0.0.1/\#(String(repeating: "a", count: 3000))"}]"#] {
                let r = try await create(bad)
                #expect(r.status == .unprocessableContent && field(r) == "notify[0].url", "\(bad): \(String(buffer: r.body))")
            }
            for (bad, path) in [(#"[{"url": "http://127.0.0.1/x", "events": ["running"]}]"#, "notify[0].events"),
                                (#"[{"url": "http://127.0.0.1/x", "events": []}]"#, "notify[0].events"),
                                (#"[{"url": "http://127.0.0.1/x", "events": "completed"}]"#, "notify[0].events"),
                                (#"[{"url": "http://127.0.0.1/x", "secret": ""}]"#, "notify[0].secret"),
                                (#"[{"url": "http://127.0.0.1/x", "secret": 12}]"#, "notify[0].secret"),
                                (#"[{"url": "http://127.0.0.1/x", "colour": "red"}]"#, "notify[0].colour"),
                                (#"{"url": "http://127.0.0.1/x"}"#, "notify"),
                                ("[" + Array(repeating: #"{"url": "http://127.0.0.1/x"}"#, count: 11).joined(separator: ",") + "]", "notify")] {
                let r = try await create(bad)
                #expect(r.status == .unprocessableContent && field(r) == path, "\(bad): \(String(buffer: r.body))")
            }
            // A patch that sends the webhooks back as shown keeps the secret: the stored secret is
            // the one sent at create, and a delivery after the patch is signed with it.
            let ok = try await create(#"[{"url": "\#(receiver.baseURL)/hooks/kept", "secret": "keep-me"}]"#)
            #expect(ok.status == .created)
            let shown = try #require(ok.json["notify"])
            #expect(shown.arrayValue?.first?["secret"] == .string("***"))
            let patched = try await client.call(.patch, "/v1/sources/x", #"{"notify": \#(String(decoding: try JSONEncoder().encode(shown), as: UTF8.self))}"#)
            #expect(patched.status == .ok)
            let stored = try #require(try await node.store.source(idOrName: "x")).notify
            #expect(stored.map(\.secret) == ["keep-me"])
            #expect(try await client.call(.post, "/v1/sources/x/syncs").status == .accepted)
            let receipt = try #require(try await eventually { hooks(receiver, "/hooks/kept").first })
            #expect(receipt.signatureIsValid(secret: "keep-me"))
            #expect(!receipt.signatureIsValid(secret: "***"))
            let moved = try await client.call(.patch, "/v1/sources/x", #"{"notify": [{"url": "http://127.0.0.1/y", "secret": "***"}]}"#)
            #expect(moved.status == .unprocessableContent && field(moved) == "notify[0].secret")
            let cleared = try await client.call(.patch, "/v1/sources/x", #"{"notify": null}"#)
            #expect(cleared.json["notify"] == .array([]))
        }
        }
    }
}

/// What docs/webhooks.md promises about tries that fail, and what no other test tried.
@Suite("Webhook tries that fail")
struct WebhookFailureTests {
    static let fast = WebhookTests.fast

    /// The backoff: 10 s after the first failed try, doubling to at most an hour, each spread
    /// by ±20 %, and none past 24 hours after the event.
    @Test func theBackoffDoublesToAnHourWithinTwentyPercentAndGivesUpAfterADay() {
        let policy = WebhookPolicy.default
        let created = Date(timeIntervalSince1970: 1_800_000_000)
        for tries in 1...20 {
            let base = min(3600, 10 * pow(2, Double(tries - 1)))
            for random in [0.0, 0.5, 0.999_999] {
                let next = try? #require(policy.nextTry(after: tries, createdAt: created, now: created, random: random))
                let wait = next.map { $0.timeIntervalSince(created) } ?? -1
                #expect(wait >= base * 0.8 - 0.001 && wait <= base * 1.2 + 0.001, "try \(tries), random \(random): \(wait) s")
            }
        }
        #expect(policy.nextTry(after: 1, createdAt: created, now: created.addingTimeInterval(86_400 - 5), random: 0) == nil)
        #expect(policy.nextTry(after: 1, createdAt: created, now: created.addingTimeInterval(86_400 - 20), random: 0) != nil)
        #expect(policy.nextTry(after: Int.max, createdAt: created, now: created, random: 1)?.timeIntervalSince(created) ?? 0 <= 3600 * 1.2)
    }

    func delivery(_ client: any TestClientProtocol, _ syncID: String, until done: @escaping @Sendable (JSONValue) -> Bool) async throws -> JSONValue {
        try await eventually(timeout: .seconds(20)) { () -> JSONValue? in
            let item = try await client.call(.get, "/v1/syncs/\(syncID)/deliveries").json["items"]?.arrayValue?.first
            return item.flatMap { done($0) ? $0 : nil }
        }
    }

    /// `410 Gone` stops the delivery at its first try; a redirect is not followed (the
    /// receiver's other path never sees a POST) and counts as a failed try; deleting the
    /// source deletes its pending deliveries.
    @Test(arguments: StoreBackend.allCases)
    func goneStopsRedirectsAreNotFollowedAndDeletingTheSourceDeletesWhatIsPending(_ backend: StoreBackend) async throws {
        let receiver = FixtureUpstream()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let node = try await TestNode(backend: backend, workers: 1, pollInterval: .milliseconds(100), webhooks: Self.fast, egress: EgressPolicy())
        try await node.test { client in
            func source(_ name: String, _ path: String) async throws -> String {
                let created = try await client.call(.post, "/v1/sources", #"""
                    {"name": "\#(name)", "kind": "synthetic", "config": {"records": 1}, "notify": [{"url": "\#(receiver.baseURL)\#(path)"}]}
                    """#)
                #expect(created.status == .created)
                return try #require(try await client.runSync(name)["id"]?.stringValue)
            }
            receiver.inject(.status(410), path: "/hooks", times: 1)
            let gone = try await source("gone", "/hooks/gone")
            let ended = try await delivery(client, gone) { $0["status"] == .string("failed") }
            #expect(ended["attempts"] == .number(1) && ended["response_status"] == .number(410), "\(ended)")
            try await Task.sleep(for: .milliseconds(600))  // past the fast policy's first retry
            #expect(receiver.requests(path: "/hooks/gone").count == 1)

            receiver.inject(.redirect(to: "\(receiver.baseURL)/hooks/elsewhere"), path: "/hooks", times: 100)
            let moved = try await source("moved", "/hooks/moved")
            let retried = try await delivery(client, moved) { ($0["attempts"]?.intValue ?? 0) >= 2 }
            #expect(retried["status"] == .string("pending") && retried["response_status"] == .number(302), "\(retried)")
            #expect(receiver.requests(path: "/hooks/elsewhere").isEmpty, "the redirect was followed")

            let pending = try #require(try await node.store.deliveries(syncID: moved).first)
            #expect(pending.status.rawValue == "pending")
            #expect(try await client.call(.delete, "/v1/sources/moved").status == .noContent)
            #expect(try await node.store.deliveries(syncID: moved).isEmpty)
            let before = receiver.requests(path: "/hooks/moved").count
            try await Task.sleep(for: .seconds(2))
            #expect(receiver.requests(path: "/hooks/moved").count == before, "a deleted source's delivery was tried again")
        }
    }

    /// The egress policy is applied again on every try: a webhook stored while its address
    /// was allowed (here written straight through the store, as a policy changed since) is
    /// refused at delivery, fails without a request, and says why.
    @Test(arguments: StoreBackend.allCases)
    func theEgressPolicyIsAppliedOnEveryTry(_ backend: StoreBackend) async throws {
        let receiver = FixtureUpstream()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let policy = EgressPolicy(deny: [EgressPolicy.Rule("127.0.0.0/8")!])
        let node = try await TestNode(backend: backend, workers: 1, pollInterval: .milliseconds(100), webhooks: Self.fast, egress: policy)
        try await node.test { client in
            var source = makeSource(name: "hooked", config: ["records": .number(1)])
            source.notify = [WebhookTarget(url: receiver.baseURL + "/hooks/denied")]
            _ = try await node.store.createSource(source)
            let id = try #require(try await client.runSync("hooked")["id"]?.stringValue)
            let ended = try await delivery(client, id) { $0["status"] == .string("failed") }
            #expect(ended["last_error"]?.stringValue?.contains("egress") == true, "\(ended)")
            #expect(receiver.requests(path: "/hooks/denied").isEmpty)
        }
    }

    /// The outbox is filled on every path that ends a sync, not only a worker's: a bulk
    /// cancel of a queued sync, and the lease rescuer ending a sync that was asked to cancel
    /// and whose worker died, each deliver `sync.cancelled`.
    @Test(arguments: StoreBackend.allCases)
    func aBulkCancelAndTheRescuerFillTheOutboxToo(_ backend: StoreBackend) async throws {
        let receiver = FixtureUpstream()
        try await receiver.start()
        defer { Task { await receiver.stop() } }
        let node = try await TestNode(backend: backend, rescueInterval: .milliseconds(200), webhooks: Self.fast, egress: EgressPolicy())
        try await node.test { client in
            var ids: [String: String] = [:]
            for name in ["bulk", "rescued"] {
                var source = makeSource(name: name, config: ["records": .number(1)])
                source.notify = [WebhookTarget(url: receiver.baseURL + "/hooks/\(name)", events: [.cancelled])]
                ids[name] = try await createAndQueue(node.store, source).sourceID
            }
            // "rescued": claimed by a node that dies after the cancel was asked for.
            let claimed = try #require(try await node.store.claimNext(owner: "dead-node", leaseSeconds: 0.3, now: Date()))
            let rescuedName = claimed.sync.sourceID == ids["rescued"] ? "rescued" : "bulk"
            let queuedName = rescuedName == "rescued" ? "bulk" : "rescued"
            #expect(try await client.call(.post, "/v1/syncs/\(claimed.sync.id)/cancel").status == .accepted)
            let bulk = try await client.call(.post, "/v1/syncs/cancel", #"{"status": ["queued"]}"#).json
            #expect(bulk["affected"] == .number(1), "\(bulk)")
            for name in [queuedName, rescuedName] {
                let receipt = try #require(try await eventually(timeout: .seconds(20)) { hooksOf(receiver, "/hooks/\(name)").first })
                #expect(receipt.event == "sync.cancelled", "\(name)")
                #expect(receipt.json["sync"]?["status"] == .string("cancelled"), "\(name)")
            }
        }
    }

    func hooksOf(_ receiver: FixtureUpstream, _ path: String) -> [WebhookReceipt] {
        receiver.requests(path: path).map(WebhookReceipt.init)
    }
}

/// Webhooks sent back as they were shown keep what is stored, matched by position.
@Suite("Webhooks sent back as shown")
struct WebhookRoundTripTests {
    /// A URL with a secret query value is shown `?api_key=***`; sent back as shown it stored
    /// the literal `***` (or was refused when the webhook signs), and two webhooks of one URL
    /// both took the first one's secret. Now each keeps its own URL and secret.
    @Test(arguments: StoreBackend.allCases)
    func webhooksSentBackAsShownKeepTheirURLsAndSecrets(_ backend: StoreBackend) async throws {
        try await withHTTPNode(items: 0, backend: backend) { client, fixture, store in
            let url = "http://127.0.0.1:9/hook?api_key=K1secret&team=a"
            let created = try await client.call(.post, "/v1/sources", #"""
                {"name": "x", "kind": "synthetic", "config": {"records": 1},
                 "notify": [{"url": "\#(url)", "secret": "first-secret"}, {"url": "\#(url)", "secret": "second-secret"},
                            {"url": "http://127.0.0.1:9/plain?token=T2", "events": ["failed"]}]}
                """#)
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let shown = try await client.call(.get, "/v1/sources/x").json["notify"] ?? .null
            #expect(shown.arrayValue?.first?["url"] == .string("http://127.0.0.1:9/hook?api_key=***&team=a"), "\(shown)")
            let sentBack = try await client.call(.patch, "/v1/sources/x", #"{"notify": \#(String(decoding: try JSONEncoder().encode(shown), as: UTF8.self))}"#)
            #expect(sentBack.status == .ok, "\(String(buffer: sentBack.body))")
            let stored = try #require(try await store.source(idOrName: "x")).notify
            #expect(stored.map(\.url) == [url, url, "http://127.0.0.1:9/plain?token=T2"])
            #expect(stored.map(\.secret) == ["first-secret", "second-secret", nil])
            // Reordered as shown: each keeps the secret of the webhook it is shown as at its place.
            let swapped = try await client.call(.patch, "/v1/sources/x", #"""
                {"notify": [{"url": "http://127.0.0.1:9/plain?token=***", "events": ["failed"]},
                            {"url": "http://127.0.0.1:9/hook?api_key=***&team=a", "secret": "***"}]}
                """#)
            #expect(swapped.status == .ok, "\(String(buffer: swapped.body))")
            let after = try #require(try await store.source(idOrName: "x")).notify
            #expect(after.map(\.url) == ["http://127.0.0.1:9/plain?token=T2", url])
            #expect(after.map(\.secret) == [nil, "second-secret"])
            // A masked URL no stored webhook is shown as cannot be stored.
            let unknown = try await client.call(.patch, "/v1/sources/x", #"{"notify": [{"url": "http://127.0.0.1:9/other?api_key=***"}]}"#)
            #expect(unknown.status == .unprocessableContent)
            #expect(unknown.json["errors"]?.arrayValue?.first?["field"] == .string("notify[0].url"), "\(String(buffer: unknown.body))")
            // Nor can a new source store one: it would deliver to `***` and never come back as shown.
            let masked = try await client.call(.post, "/v1/sources", #"{"name": "m", "kind": "synthetic", "config": {"records": 1}, "notify": [{"url": "http://127.0.0.1:9/a?x=***"}]}"#)
            #expect(masked.status == .unprocessableContent, "\(String(buffer: masked.body))")
            _ = fixture
        }
    }
}
