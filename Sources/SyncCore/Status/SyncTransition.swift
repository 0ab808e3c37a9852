/// The transition table of the sync lifecycle, as data.
///
/// This is the only place that decides whether a status change is legal; the
/// stores call ``SyncTransition/validate(from:to:)`` before every write that
/// changes a status, and the SQL of each write is additionally conditioned on
/// the expected current status so that races lose cleanly instead of
/// corrupting state.
public enum SyncTransition {
    /// Every legal `from → to` pair (docs/api.md, "Allowed transitions").
    public static let table: [SyncStatus: Set<SyncStatus>] = [
        .queued: [.running, .cancelled],
        // queued: lease lost or graceful shutdown; resumes from the checkpoint.
        .running: [.completed, .failed, .cancelled, .retrying, .queued],
        .retrying: [.running, .cancelled],
        .completed: [],
        // Manual retry.
        .failed: [.queued],
        .cancelled: [.queued],
    ]

    /// Whether `from → to` is a legal transition.
    public static func isAllowed(from: SyncStatus, to: SyncStatus) -> Bool {
        table[from, default: []].contains(to)
    }

    /// Throws ``IllegalTransition`` unless `from → to` is legal.
    public static func validate(from: SyncStatus, to: SyncStatus) throws(IllegalTransition) {
        guard isAllowed(from: from, to: to) else { throw IllegalTransition(from: from, to: to) }
    }

    /// The statuses from which a sync may move to `to`.
    public static func sources(of to: SyncStatus) -> [SyncStatus] {
        SyncStatus.allCases.filter { isAllowed(from: $0, to: to) }
    }
}

/// A status change that the lifecycle does not allow: always a bug or a lost race.
public struct IllegalTransition: Error, Sendable, Equatable, CustomStringConvertible {
    public let from: SyncStatus
    public let to: SyncStatus
    public init(from: SyncStatus, to: SyncStatus) {
        self.from = from
        self.to = to
    }
    public var description: String { "illegal sync transition \(from.rawValue) → \(to.rawValue)" }
}
