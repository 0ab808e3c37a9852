import Foundation
import Testing
import SyncCore
import SyncStore
import TestSupport

/// A sync left `retrying` by a claimed attempt, for tests that then write an absurd time
/// into its row the way an older version did (from `Retry-After: inf`).
func retryingSync(_ store: any SyncStore) async throws -> Sync {
    let source = try await store.createSource(makeSource())
    _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
    let claimed = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
    let error = SyncError(.upstreamRateLimited, "HTTP 429 from upstream", retryable: true)
    return try await store.finish(claimed.lease, outcome: .retrying(error, nextRetryAt: Date().addingTimeInterval(60)), now: Date())
}

/// Every reader of that sync gets the latest time RFC 3339 can write (none traps, none is
/// infinite or wrapped into the past), the queue's next run time is that time too, and the
/// sync can be cancelled.
func expectReadersSurviveAnAbsurdTime(_ store: any SyncStore, syncID: String) async throws {
    let read = try #require(try await store.sync(id: syncID))
    let next = try #require(read.nextRetryAt)
    #expect(next.timeIntervalSince1970.isFinite)
    #expect(abs(next.timeIntervalSince(Timestamp.latest)) < 1, "next_retry_at read as \(next.timeIntervalSince1970)")
    #expect(Timestamp.parse(Timestamp.format(next)) != nil)
    let listed = try await store.listSyncs(SyncFilter(), limit: 10, before: nil)
    #expect(listed.count == 1)
    #expect(listed.first?.nextRetryAt.map { abs($0.timeIntervalSince(Timestamp.latest)) < 1 } == true)
    let runAt = try #require(try await store.nextRunAt(), "the retrying sync is the queue's next run")
    #expect(abs(runAt.timeIntervalSince(Timestamp.latest)) < 1, "next run read as \(runAt.timeIntervalSince1970)")
    #expect(try await store.requestCancel(syncID: syncID, now: Date()).status == .cancelled)
}
