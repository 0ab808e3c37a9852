/// The one status vocabulary of a sync.
///
/// The raw values are the strings stored in the database (guarded by a CHECK
/// constraint), returned by the API, written to logs and exported as metric
/// labels. There is no second vocabulary anywhere (seed problem 2).
public enum SyncStatus: String, Sendable, Codable, CaseIterable, Hashable {
    case queued
    case running
    case retrying
    case completed
    case failed
    case cancelled

    /// Whether the sync has reached an end state (`completed`, `failed`, `cancelled`).
    public var isTerminal: Bool {
        switch self {
        case .completed, .failed, .cancelled: true
        case .queued, .running, .retrying: false
        }
    }

    /// The non-terminal statuses, as used by the one-active-sync-per-source index.
    public static let active: [SyncStatus] = allCases.filter { !$0.isTerminal }

    /// The terminal statuses.
    public static let terminal: [SyncStatus] = allCases.filter(\.isTerminal)
}
