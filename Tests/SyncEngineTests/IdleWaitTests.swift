import Foundation
import Testing
@testable import SyncEngine

/// How long the dispatcher sleeps after a claim that found nothing.
@Suite("Idle wait")
struct IdleWaitTests {
    let poll = Duration.milliseconds(500)

    /// A sync due before the claim ran and still not claimed waits on something a clock does
    /// not bring (a full concurrency key, a row another node holds): wait for a wake-up or
    /// the poll interval, never a millisecond (the dispatcher used to spin).
    @Test func aSyncDueBeforeTheClaimMeansWaitForAWakeUp() {
        let claimedAt = Date()
        for past in [0.0, 0.001, 5, 86_400] {
            #expect(IdleWait.of(claimedAt.addingTimeInterval(-past), claimedAt, poll) == poll, "\(past) s before the claim")
        }
    }

    @Test func aSyncDueSoonIsWaitedForAndNoLonger() {
        let claimedAt = Date()
        let wait = IdleWait.of(claimedAt.addingTimeInterval(0.2), claimedAt, poll)
        #expect(wait > .milliseconds(100) && wait <= .milliseconds(200))
        // Became due between the claim and the question: claim again almost at once.
        #expect(IdleWait.of(Date().addingTimeInterval(-0.01), claimedAt.addingTimeInterval(-1), poll) == .milliseconds(1))
    }

    @Test func nothingDueOrFarAwayWaitsThePollInterval() {
        let claimedAt = Date()
        #expect(IdleWait.of(nil, claimedAt, poll) == poll)
        for far in [60.0, 1e12, .infinity] { #expect(IdleWait.of(claimedAt.addingTimeInterval(far), claimedAt, poll) == poll) }
    }
}

private enum IdleWait {
    static func of(_ next: Date?, _ claimedAt: Date, _ poll: Duration) -> Duration {
        WorkerPool.idleWait(until: next, claimedAt: claimedAt, pollInterval: poll)
    }
}
