import Testing
import SyncCore

@Suite("Sync status lifecycle")
struct SyncStatusTests {
    @Test func rawValuesAreTheAPIVocabulary() {
        #expect(SyncStatus.allCases.map(\.rawValue) == ["queued", "running", "retrying", "completed", "failed", "cancelled"])
        #expect(SyncStatus.terminal == [.completed, .failed, .cancelled])
        #expect(SyncStatus.active == [.queued, .running, .retrying])
    }

    /// The legal transitions of docs/api.md, written out independently of the table under test.
    static let legal: Set<String> = [
        "queued→running", "queued→cancelled",
        "running→completed", "running→failed", "running→cancelled", "running→retrying", "running→queued",
        "retrying→running", "retrying→cancelled",
        "failed→queued", "cancelled→queued",
    ]

    static let allPairs: [(SyncStatus, SyncStatus)] = SyncStatus.allCases.flatMap { from in SyncStatus.allCases.map { (from, $0) } }

    @Test(arguments: allPairs)
    func everyTransitionIsLegalOrIllegalAsAPIMDSays(from: SyncStatus, to: SyncStatus) {
        let expected = Self.legal.contains("\(from.rawValue)→\(to.rawValue)")
        #expect(SyncTransition.isAllowed(from: from, to: to) == expected)
        if expected {
            #expect(throws: Never.self) { try SyncTransition.validate(from: from, to: to) }
        } else {
            #expect(throws: IllegalTransition(from: from, to: to)) { try SyncTransition.validate(from: from, to: to) }
        }
    }

    @Test func completedIsFinal() {
        #expect(SyncTransition.table[.completed]?.isEmpty == true)
        #expect(SyncTransition.sources(of: .queued) == [.running, .failed, .cancelled])
    }
}
