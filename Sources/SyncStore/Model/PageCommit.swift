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
    /// A record whose key no store can hold (``RecordKey/unstorable(_:)``) becomes a record
    /// error of the page, on both stores alike; the rest of the page is stored.
    public init(pageNumber: Int, records: [SourceRecord], recordErrors: [RecordError] = [], bytesRead: Int, checkpoint: JSONValue?, sourceState: JSONObject? = nil) {
        self.pageNumber = pageNumber
        // A record error names no key that no store can hold (it could not be stored or looked up).
        var errors = recordErrors.map { error in
            var error = error
            if let key = error.recordKey, RecordKey.unstorable(key) != nil { error.recordKey = nil }
            return error
        }
        var storable = records
        if records.contains(where: { RecordKey.unstorable($0.key) != nil }) {
            storable = []
            for record in records {
                if let problem = RecordKey.unstorable(record.key) {
                    // No key is named: it could not be looked up (or bound) either.
                    errors.append(RecordError(page: pageNumber, recordKey: nil, message: problem))
                } else {
                    storable.append(record)
                }
            }
        }
        self.records = Self.lastOccurrences(storable)
        self.recordErrors = errors
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
        // By bytes: two keys that are canonically equivalent strings are two records.
        var position: [BytewiseString: Int] = [:]
        position.reserveCapacity(records.count)
        var out: [SourceRecord] = []
        out.reserveCapacity(records.count)
        for record in records {
            let key = BytewiseString(record.key)
            if let at = position[key] {
                out[at] = record
            } else {
                position[key] = out.count
                out.append(record)
            }
        }
        return out
    }
}
