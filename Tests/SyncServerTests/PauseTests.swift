import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncStore
import TestSupport

/// Pause and resume: a paused source is neither scheduled nor claimed; a running sync finishes.
@Suite("Pause and resume")
struct PauseTests {
    @Test(arguments: StoreBackend.allCases)
    func aPausedSourceIsNeitherClaimedNorScheduled(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend, workers: 2, pollInterval: .milliseconds(100)).test { client in
            _ = try await client.createSource("p", records: 10, pageSize: 5)
            _ = try await client.createSource("free", records: 10, pageSize: 5)
            let paused = try await client.call(.post, "/v1/sources/p/pause")
            #expect(paused.status == .ok)
            #expect(paused.json["paused"] == .bool(true))
            #expect(try await client.call(.post, "/v1/sources/p/pause").json["paused"] == .bool(true))  // idempotent
            let waiting = try #require(try await client.call(.post, "/v1/sources/p/syncs").json["id"]?.stringValue)
            let other = try #require(try await client.call(.post, "/v1/sources/free/syncs").json["id"]?.stringValue)
            // The other source's sync (queued after it) runs; the paused one waits.
            _ = try await eventually { try await client.call(.get, "/v1/syncs/\(other)").json["status"] == .string("completed") ? true : nil }
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await client.call(.get, "/v1/syncs/\(waiting)").json["status"] == .string("queued"))
            let listed = try await client.call(.get, "/v1/sources?paused=true").json["items"]?.arrayValue ?? []
            #expect(listed.map { $0["name"] } == [.string("p")])
            #expect(try await client.call(.get, "/v1/sources?paused=false").json["items"]?.arrayValue?.map { $0["name"] } == [.string("free")])
            #expect(try await client.call(.get, "/v1/sources?paused=maybe").status == .unprocessableContent)
            // Resume: it runs.
            let resumed = try await client.call(.post, "/v1/sources/p/resume")
            #expect(resumed.json["paused"] == .bool(false))
            _ = try await eventually { try await client.call(.get, "/v1/syncs/\(waiting)").json["status"] == .string("completed") ? true : nil }

            // A scheduled source that is paused is not queued by the scheduler.
            let scheduled = try await client.call(.post, "/v1/sources", #"{"name": "sched", "kind": "synthetic", "config": {"records": 1}, "schedule": {"every_seconds": 1}}"#)
            #expect(scheduled.status == .created)
            _ = try await eventually { (try await client.call(.get, "/v1/syncs?source_id=\(scheduled.json["id"]?.stringValue ?? "")").json["items"]?.arrayValue?.count ?? 0) >= 1 ? true : nil }
            #expect(try await client.call(.post, "/v1/sources/sched/pause").status == .ok)
            // Whatever the scheduler queued before the pause is cancelled, so only the pause can
            // keep it from queueing the next one (a queued sync of a paused source just waits).
            #expect(try await client.call(.post, "/v1/syncs/cancel", #"{"source_id": "sched"}"#).status == .ok)
            _ = try await eventually { () -> Bool? in
                let items = try await client.call(.get, "/v1/syncs?source_id=\(scheduled.json["id"]?.stringValue ?? "")&status=queued,running,retrying").json["items"]?.arrayValue ?? []
                return items.isEmpty ? true : nil
            }
            let before = try await client.call(.get, "/v1/syncs?source_id=\(scheduled.json["id"]?.stringValue ?? "")").json["items"]?.arrayValue?.count ?? 0
            try await Task.sleep(for: .milliseconds(2500))
            let after = try await client.call(.get, "/v1/syncs?source_id=\(scheduled.json["id"]?.stringValue ?? "")").json["items"]?.arrayValue?.count ?? 0
            #expect(after == before, "the scheduler queued a paused source's sync")
            #expect(try await client.call(.post, "/v1/sources/nope/pause").status == .notFound)

            // A sync retried while its source is paused waits too.
            let failing = try await client.call(.post, "/v1/sources", #"{"name": "f", "kind": "synthetic", "config": {"records": 10, "fail_every_n_pages": 1}, "retry": {"max_attempts": 1}}"#)
            #expect(failing.status == .created)
            let failed = try #require(try await client.call(.post, "/v1/sources/f/syncs").json["id"]?.stringValue)
            _ = try await eventually { try await client.call(.get, "/v1/syncs/\(failed)").json["status"] == .string("failed") ? true : nil }
            #expect(try await client.call(.post, "/v1/sources/f/pause").status == .ok)
            #expect(try await client.call(.post, "/v1/syncs/\(failed)/retry").status == .accepted)
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await client.call(.get, "/v1/syncs/\(failed)").json["status"] == .string("queued"))
            #expect(try await client.call(.post, "/v1/sources/f/resume").status == .ok)
            _ = try await eventually { try await client.call(.get, "/v1/syncs/\(failed)").json["status"] == .string("failed") ? true : nil }
        }
    }

    /// Pausing a source whose sync runs lets it finish normally; pausing one whose sync is
    /// `retrying` holds it past its retry time; resuming wakes a worker at once (the pool
    /// polls every 60 s here, so a start within seconds is the wake-up).
    @Test(arguments: StoreBackend.allCases)
    func aRunningSyncFinishesARetryingOneWaitsAndResumeWakesAWorker(_ backend: StoreBackend) async throws {
        let node = try await TestNode(backend: backend, workers: 1, pollInterval: .seconds(60))
        try await node.test { client in
            #expect(try await client.call(.post, "/v1/sources", #"{"name": "busy", "kind": "synthetic", "config": {"records": 20, "page_size": 5, "delay_ms_per_page": 300}}"#).status == .created)
            let running = try #require(try await client.call(.post, "/v1/sources/busy/syncs").json["id"]?.stringValue)
            _ = try await eventually { try await client.call(.get, "/v1/syncs/\(running)").json["status"] == .string("running") ? true : nil }
            #expect(try await client.call(.post, "/v1/sources/busy/pause").json["paused"] == .bool(true))
            let finished = try await client.waitTerminal(running, timeout: .seconds(20))
            #expect(finished["status"] == .string("completed"), "\(finished)")

            let failing = try await client.call(.post, "/v1/sources", #"""
                {"name": "flaky", "kind": "synthetic", "config": {"records": 10, "fail_every_n_pages": 1},
                 "retry": {"max_attempts": 10, "initial_delay_seconds": 2, "max_delay_seconds": 2}}
                """#)
            #expect(failing.status == .created)
            let retried = try #require(try await client.call(.post, "/v1/sources/flaky/syncs").json["id"]?.stringValue)
            _ = try await eventually { try await client.call(.get, "/v1/syncs/\(retried)").json["status"] == .string("retrying") ? true : nil }
            #expect(try await client.call(.post, "/v1/sources/flaky/pause").status == .ok)
            // The retry delay has full jitter (0–2 s), so a second attempt may have started
            // before the pause landed; it runs to its end. Count the attempts once it rests.
            let before = try await eventually { () -> Int? in
                let s = try await client.call(.get, "/v1/syncs/\(retried)").json
                return s["status"] == .string("retrying") ? s["attempts"]?.arrayValue?.count : nil
            }
            try await Task.sleep(for: .seconds(3))  // past its retry time
            let held = try await client.call(.get, "/v1/syncs/\(retried)").json
            #expect(held["status"] == .string("retrying") && held["attempts"]?.arrayValue?.count == before, "\(held)")
            let resumedAt = Date()
            #expect(try await client.call(.post, "/v1/sources/flaky/resume").json["paused"] == .bool(false))
            let next = try await eventually(timeout: .seconds(20)) { () -> JSONValue? in
                let attempts = try await client.call(.get, "/v1/syncs/\(retried)").json["attempts"]?.arrayValue ?? []
                return attempts.count > before ? attempts[before] : nil
            }
            let started = try #require(next["started_at"]?.stringValue.flatMap(Timestamp.parse))
            #expect(started.timeIntervalSince(resumedAt) < 2, "the next attempt started \(started.timeIntervalSince(resumedAt)) s after the resume")
        }
    }
}
