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

/// Every reader of that sync gets a time it can format (none traps), and it can be cancelled.
func expectReadersSurviveAnAbsurdTime(_ store: any SyncStore, syncID: String) async throws {
    let read = try #require(try await store.sync(id: syncID))
    let next = try #require(read.nextRetryAt)
    #expect(Timestamp.parse(Timestamp.format(next)) != nil)
    #expect(try await store.listSyncs(SyncFilter(), limit: 10, before: nil).count == 1)
    let runAt = try await store.nextRunAt()
    #expect(runAt.map { Timestamp.parse(Timestamp.format($0)) != nil } ?? true)
    #expect(try await store.requestCancel(syncID: syncID, now: Date()).status == .cancelled)
}
