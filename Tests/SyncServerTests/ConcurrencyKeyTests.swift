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
}
