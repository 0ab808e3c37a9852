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

    public static func evaluate(latestFinished: SyncStatus?, lastCompletedAt: Date?, schedule: Schedule?, now: Date) -> SourceHealth {
        guard let finished = latestFinished else { return .neverSynced }
        if finished == .failed { return .failing }
        if let schedule {
            guard let last = lastCompletedAt, now.timeIntervalSince(last) <= 2 * schedule.everySeconds else { return .stale }
        }
        return .ok
    }
}
