import Foundation
import SyncCore

/// One page to commit.
public struct PageCommit: Sendable {
    /// 1-based page number within the whole sync.
    public var pageNumber: Int
    public var records: [SourceRecord]
    public var recordErrors: [RecordError]
    public var bytesRead: Int
    /// Where the next page starts; `nil` when the source is exhausted.
    public var checkpoint: JSONValue?
    /// Keys to merge into the source's state (e.g. the incremental cursor), in the same transaction.
    public var sourceState: JSONObject?

    /// `records` may repeat a key: the page then holds its last occurrence, once, where the
    /// first occurrence stood (a key counts once per page; docs/sources.md, "Record keys").
    public init(pageNumber: Int, records: [SourceRecord], recordErrors: [RecordError] = [], bytesRead: Int, checkpoint: JSONValue?, sourceState: JSONObject? = nil) {
        self.pageNumber = pageNumber
        self.records = Self.lastOccurrences(records)
        self.recordErrors = recordErrors
        self.bytesRead = bytesRead
        self.checkpoint = checkpoint
        self.sourceState = sourceState
    }
}

extension PageCommit {
    /// The keys of the page's record errors: a full sync counts them as seen, so a record that
    /// only failed validation this time is kept, not deleted.
    public var recordErrorKeys: [String] { recordErrors.compactMap(\.recordKey) }

    static func lastOccurrences(_ records: [SourceRecord]) -> [SourceRecord] {
        var position: [String: Int] = [:]
        position.reserveCapacity(records.count)
        var out: [SourceRecord] = []
        out.reserveCapacity(records.count)
        for record in records {
            if let at = position[record.key] {
                out[at] = record
            } else {
                position[record.key] = out.count
                out.append(record)
            }
        }
        return out
    }
}
