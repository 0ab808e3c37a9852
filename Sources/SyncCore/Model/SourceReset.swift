import Foundation

/// An operator's reset of a source (`POST /v1/sources/{id}/reset`): its saved state cleared,
/// its live records marked deleted, or both. Kept as the source's history of resets.
public struct SourceReset: Sendable, Equatable {
    public var id: String
    public var sourceID: String
    public var at: Date
    /// Whether the saved state (the incremental cursor) was cleared.
    public var state: Bool
    /// Whether the live records were marked deleted.
    public var records: Bool
    /// The state as it was before the reset (what the next sync would have started from).
    public var stateBefore: JSONObject
    /// How many live records the reset marked deleted.
    public var recordsDeleted: Int
    /// Who asked (`api` or `cli`).
    public var trigger: SyncTrigger

    public init(id: String, sourceID: String, at: Date, state: Bool, records: Bool, stateBefore: JSONObject,
                recordsDeleted: Int, trigger: SyncTrigger) {
        self.id = id
        self.sourceID = sourceID
        self.at = at
        self.state = state
        self.records = records
        self.stateBefore = stateBefore
        self.recordsDeleted = recordsDeleted
        self.trigger = trigger
    }
}
