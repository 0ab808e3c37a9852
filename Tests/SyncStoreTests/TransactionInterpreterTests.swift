import Foundation
import Synchronization
import Testing
import TestSupport
@testable import SyncStore

/// The one interpreter of ``StoreTransaction`` both drivers share: what a write's unique
/// violation becomes, and that `rerun` runs the rule a second time (once) with fresh facts.
@Suite("Transaction interpreter")
struct TransactionInterpreterTests {
    /// A rule that inserts the node `id` (already there) and says what a violation means;
    /// returns how often the rule decided and what was thrown.
    func violate(_ store: DatabaseStore, id: String, _ meaning: UniqueViolation) async -> (decisions: Int, error: (any Error)?) {
        let decisions = Atomic<Int>(0)
        do {
            _ = try await store.driver.transact(StoreTransaction<Int>(facts: ["SELECT COUNT(*) AS n FROM nodes"]) { _ in
                decisions.add(1, ordering: .relaxed)
                return StoreDecision(writes: [StoreWrite("""
                    INSERT INTO nodes (id, role, workers, started_at, heartbeat_at) VALUES (\(id), 'serve', 1, 0, 0)
                    """, onUniqueViolation: meaning)]) { _, _ in 0 }
            })
            return (decisions.load(ordering: .relaxed), nil)
        } catch {
            return (decisions.load(ordering: .relaxed), error)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aUniqueViolationIsPassedOnMappedOrRunAgainOnce(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        try await store.registerNode(NodeInfo(id: "taken", role: "serve", workers: 1, startedAt: Date(), heartbeatAt: Date()))

        let passed = await violate(store, id: "taken", .propagate)
        #expect(passed.decisions == 1)
        #expect(passed.error != nil && !(passed.error is SyncStoreError) && !(passed.error is RunTransactionAgain))

        let mapped = await violate(store, id: "taken", .fail(.nameTaken("taken")))
        #expect(mapped.decisions == 1)
        #expect((mapped.error as? SyncStoreError) == .nameTaken("taken"))

        // Run again once: the second run meets the same violation, which then goes on as it is.
        let rerun = await violate(store, id: "taken", .rerun)
        #expect(rerun.decisions == 2)
        #expect(rerun.error != nil && !(rerun.error is RunTransactionAgain) && !(rerun.error is SyncStoreError))

        // Nothing a refused rule wrote stays.
        #expect(try await store.healthSnapshot(now: Date()).nodes.map(\.id) == ["taken"])
    }
}
