import Foundation

/// A record as stored: its key, its JSON bytes as the upstream sent them, and its history.
public struct StoredRecord: Sendable, Equatable {
    public var key: String
    public var data: [UInt8]
    public var createdAt: Date
    public var updatedAt: Date
    public var deletedAt: Date?
    /// The sync that last wrote the record; `nil` once retention pruned that sync.
    public var syncID: String?

    public init(key: String, data: [UInt8], createdAt: Date, updatedAt: Date, deletedAt: Date?, syncID: String?) {
        self.key = key
        self.data = data
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.deletedAt = deletedAt
        self.syncID = syncID
    }
}

/// A record a source read from one page: its primary key and its JSON bytes.
public struct SourceRecord: Sendable, Equatable {
    public var key: String
    public var data: [UInt8]
    public init(key: String, data: [UInt8]) {
        self.key = key
        self.data = data
    }
}

/// A record that could not be stored (no primary key, not an object, too large).
public struct RecordError: Sendable, Equatable, Codable {
    public var page: Int
    public var recordKey: String?
    public var message: String
    public init(page: Int, recordKey: String?, message: String) {
        self.page = page
        self.recordKey = recordKey
        self.message = message
    }
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case page
        case recordKey = "record_key"
        case message
    }
}

/// A 64-bit FNV-1a hash of a record's bytes, used to tell updated from unchanged
/// records without reading the stored bytes back.
public enum ContentHash {
    public static func of(_ bytes: [UInt8]) -> Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        bytes.withUnsafeBufferPointer { buffer in
            for b in buffer {
                h ^= UInt64(b)
                h = h &* 0x0000_0100_0000_01B3
            }
        }
        return Int64(bitPattern: h)
    }
}

/// What a record's last change was, as the change feed tells it.
public enum ChangeOp: String, Sendable, CaseIterable {
    case created, updated, deleted
}

/// One entry of a source's change feed: a record at its current state and its last change.
public struct RecordChange: Sendable, Equatable {
    public var op: ChangeOp
    public var record: StoredRecord
    /// The source's change number of the record's last change.
    public var change: Int64

    public init(op: ChangeOp, record: StoredRecord, change: Int64) {
        self.op = op
        self.record = record
        self.change = change
    }
}

/// A page of a source's change feed and where the feed stood when it was read.
public struct ChangePage: Sendable, Equatable {
    public var changes: [RecordChange]
    /// The last change number given (`head`) and the first a cursor may still name (`floor`:
    /// a cursor below it was issued before the source's records were reset).
    public var head: Int64
    public var floor: Int64

    public init(changes: [RecordChange], head: Int64, floor: Int64) {
        self.changes = changes
        self.head = head
        self.floor = floor
    }
}
