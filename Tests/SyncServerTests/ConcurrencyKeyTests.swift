import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// Concurrency keys (docs/queue.md): at most `limit` syncs of the sources sharing a key run
/// at once; a sync whose key is full does not hold up the ones behind it.
@Suite("Concurrency keys")
struct ConcurrencyKeyTests {
    static func keyed(_ name: String, key: String = "crm-7", limit: Int = 2) -> String {
        #"{"name": "\#(name)", "kind": "synthetic", "config": {"records": 3, "page_size": 1, "delay_ms_per_page": 1000}, "concurrency": {"key": "\#(key)", "limit": \#(limit)}}"#
    }

    @Test(arguments: StoreBackend.allCases)
    func noMoreThanTheLimitRunAndOthersPassThem(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 6, pollInterval: .milliseconds(50)).test { client in
            // Every source first, then the triggers back to back: under a loaded machine a source
            // and its trigger took 2 s, and the free sync was queued when the keyed ones no longer waited.
            for i in 0..<6 { #expect(try await client.call(.post, "/v1/sources", Self.keyed("k\(i)")).status == .created) }
            _ = try await client.createSource("free", records: 1)
            var ids: [String] = []
            for i in 0..<6 { ids.append(try #require(try await client.call(.post, "/v1/sources/k\(i)/syncs").json["id"]?.stringValue)) }
            // Queued after all six (each keyed sync takes 3 s: the first two still run), without a key:
            // it starts while the keyed ones wait.
            let free = try #require(try await client.call(.post, "/v1/sources/free/syncs").json["id"]?.stringValue)
            for id in ids { _ = try await client.waitTerminal(id, timeout: .seconds(60)) }
            // How many ran at once, from every attempt's recorded start and end.
            var attempts: [(start: Double, end: Double)] = []
            for id in ids {
                for attempt in try await client.call(.get, "/v1/syncs/\(id)").json["attempts"]?.arrayValue ?? [] {
                    let start = try #require(attempt["started_at"]?.stringValue.flatMap(Timestamp.parse))
                    let end = try #require(attempt["finished_at"]?.stringValue.flatMap(Timestamp.parse))
                    attempts.append((start.timeIntervalSince1970, end.timeIntervalSince1970))
                }
            }
            #expect(attempts.count == 6)
            #expect(maximumOverlap(attempts) == 2, "at most the limit, and the limit used: \(attempts)")
            // The unkeyed sync, queued last, finished before the last keyed one started.
            let freeDone = try await client.call(.get, "/v1/syncs/\(free)").json["finished_at"]?.stringValue.flatMap(Timestamp.parse)
            let lastKeyedStart = try await ids.asyncMap { try await client.call(.get, "/v1/syncs/\($0)").json["started_at"]?.stringValue.flatMap(Timestamp.parse) ?? .distantPast }.max()
            let freeSync = try await client.call(.get, "/v1/syncs/\(free)").json
            var timeline = ["free: queued \(freeSync["queued_at"] ?? .null) started \(freeSync["started_at"] ?? .null) finished \(freeSync["finished_at"] ?? .null)"]
            for id in ids {
                let keyed = try await client.call(.get, "/v1/syncs/\(id)").json
                timeline.append("keyed: queued \(keyed["queued_at"] ?? .null) started \(keyed["started_at"] ?? .null) finished \(keyed["finished_at"] ?? .null)")
            }
            #expect(freeDone != nil && lastKeyedStart != nil && freeDone! < lastKeyedStart!, "\(timeline.joined(separator: "\n"))")
            for id in ids { #expect(try await client.call(.get, "/v1/syncs/\(id)").json["status"] == .string("completed")) }
            // The source shows its key; bad keys are refused by field.
            #expect(try await client.call(.get, "/v1/sources/k0").json["concurrency"] == .object(["key": .string("crm-7"), "limit": .number(2)]))
            for bad in [#"{"key": "", "limit": 2}"#, #"{"key": "a", "limit": 0}"#, #"{"key": "a"}"#, #"{"key": "a", "limit": 2, "x": 1}"#, #""a""#] {
                let r = try await client.call(.patch, "/v1/sources/k0", #"{"concurrency": \#(bad)}"#)
                #expect(r.status == .unprocessableContent, "\(bad)")
            }
            #expect(try await client.call(.patch, "/v1/sources/k0", #"{"concurrency": null}"#).json["concurrency"] == .null)
        }
    }

    /// Sources sharing a key with different limits are each held to their own: a limit-1
    /// source waits while two limit-3 ones run, and runs at once when its PATCH drops the
    /// key. A key's slot is freed by a sync that goes `retrying`, one that is cancelled while
    /// running, and one that ends `failed`.
    @Test(arguments: StoreBackend.allCases)
    func eachSourceKeepsItsOwnLimitAndEveryEndFreesTheSlot(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 3, pollInterval: .milliseconds(100)).test { client in
            @Sendable func status(_ id: String) async throws -> String { try await client.call(.get, "/v1/syncs/\(id)").json["status"]?.stringValue ?? "" }
            func source(_ name: String, _ config: String, _ rest: String) async throws {
                let r = try await client.call(.post, "/v1/sources", #"{"name": "\#(name)", "kind": "synthetic", "config": \#(config)\#(rest)}"#)
                #expect(r.status == .created, "\(String(buffer: r.body))")
            }
            func trigger(_ name: String) async throws -> String { try #require(try await client.call(.post, "/v1/sources/\(name)/syncs").json["id"]?.stringValue) }
            let slow = #"{"records": 3, "page_size": 1, "delay_ms_per_page": 1500}"#
            for name in ["wide-1", "wide-2"] { try await source(name, slow, #", "concurrency": {"key": "k", "limit": 3}"#) }
            try await source("narrow", #"{"records": 1}"#, #", "concurrency": {"key": "k", "limit": 1}"#)
            let wide = [try await trigger("wide-1"), try await trigger("wide-2")]
            for id in wide { _ = try await eventually { try await status(id) == "running" ? true : nil } }
            let narrow = try await trigger("narrow")
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await status(narrow) == "queued", "a limit-1 sync ran beside two others of its key")
            #expect(try await client.call(.patch, "/v1/sources/narrow", #"{"concurrency": null}"#).status == .ok)
            _ = try await eventually(timeout: .seconds(3)) { try await status(narrow) == "completed" ? true : nil }
            for id in wide { #expect(try await status(id) == "running", "the narrow sync ran once its key was dropped, before the wide ones ended") }
            for id in wide { _ = try await client.waitTerminal(id, timeout: .seconds(20)) }

            // Limit 1: each way a sync ends hands the slot on.
            let one = #", "concurrency": {"key": "one", "limit": 1}"#
            try await source("flaky", #"{"records": 3, "fail_every_n_pages": 1}"#, one + #", "retry": {"max_attempts": 2, "initial_delay_seconds": 4, "max_delay_seconds": 4}"#)
            try await source("long", #"{"records": 100, "page_size": 1, "delay_ms_per_page": 1000}"#, one)
            try await source("quick", #"{"records": 1}"#, one)
            let flaky = try await trigger("flaky")
            _ = try await eventually { try await status(flaky) == "retrying" ? true : nil }
            let long = try await trigger("long")
            _ = try await eventually(timeout: .seconds(3)) { try await status(long) == "running" ? true : nil }  // freed by retrying
            let quick = try await trigger("quick")
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await status(quick) == "queued", "the key's one slot is long's")
            #expect(try await client.call(.post, "/v1/syncs/\(long)/cancel").status == .accepted)
            _ = try await eventually(timeout: .seconds(8)) { try await status(quick) == "completed" ? true : nil }  // freed by the cancel
            #expect(try await status(long) == "cancelled")
            _ = try await eventually(timeout: .seconds(15)) { try await status(flaky) == "failed" ? true : nil }
            let again = try await trigger("quick")
            _ = try await eventually(timeout: .seconds(3)) { try await status(again) == "completed" ? true : nil }  // freed by failed
        }
    }

    /// A keyed sync whose worker died holds the key's slot only until its lease is rescued:
    /// then the other keyed sync runs, and the rescued one after it.
    @Test(arguments: StoreBackend.allCases)
    func aRescuedLeaseFreesItsSlot(_ backend: StoreBackend) async throws {
        let node = try await TestNode(backend: backend, workers: 1, pollInterval: .milliseconds(100), rescueInterval: .milliseconds(200))
        // Set up before the node runs: its worker must not take the first sync before the dead node.
        var syncs: [String] = []
        for name in ["r1", "r2"] {
            var source = makeSource(name: name, config: ["records": .number(2)])
            source.concurrency = ConcurrencyLimit(key: "r", limit: 1)
            syncs.append(try await createAndQueue(node.store, source).id)
        }
        let dead = try #require(try await node.store.claimNext(owner: "dead-node", leaseSeconds: 1.5, now: Date()))
        let other = syncs.first { $0 != dead.sync.id } ?? ""
        let all = syncs
        try await node.test { client in
            try await Task.sleep(for: .milliseconds(500))
            let otherNow = try await client.call(.get, "/v1/syncs/\(other)").json
            #expect(otherNow["status"] == .string("queued"), "the slot is the dead node until its lease is rescued: \(otherNow)")
            for id in all { _ = try await client.waitTerminal(id, timeout: .seconds(20)) }
            for id in all { #expect(try await client.call(.get, "/v1/syncs/\(id)").json["status"] == .string("completed")) }
        }
    }
}
