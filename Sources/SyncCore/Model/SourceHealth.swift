import Foundation

/// A source's health as the API reports it (docs/api.md, "Sources").
public enum SourceHealth: String, Sendable, Codable, CaseIterable {
    /// No sync has finished yet.
    case neverSynced = "never_synced"
    /// Its latest finished sync failed.
    case failing
    /// It has a schedule and no sync completed within twice its interval.
    case stale
    case ok
    /// Its credential needs new secrets: its syncs fail until they are given (docs/credentials.md).
    case needsReauth = "needs_reauth"

    /// A scheduled source is stale once this many intervals pass without a completed sync.
    /// The store's health snapshot states the same rule in SQL from this constant, and a
    /// conformance test holds the two to the same answers.
    public static let staleAfterIntervals: Double = 2

    public static func evaluate(latestFinished: SyncStatus?, lastCompletedAt: Date?, schedule: Schedule?, now: Date) -> SourceHealth {
        guard let finished = latestFinished else { return .neverSynced }
        if finished == .failed { return .failing }
        if let schedule {
            guard let last = lastCompletedAt, now.timeIntervalSince(last) <= staleAfterIntervals * schedule.everySeconds else { return .stale }
        }
        return .ok
    }
}
