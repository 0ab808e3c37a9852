import Foundation
import GRDB
import SyncCore

/// Upserts one page of records with cached prepared statements (DESIGN.md: GRDB with a
/// cached statement is the fastest SQLite path measured here) and counts what changed.
enum SQLiteRecordWriter {
    struct Counts {
        var created = 0
        var updated = 0
        var unchanged = 0
    }

    static func upsert(_ records: [SourceRecord], sourceID: String, syncID: String, now: Double, db: Database) throws -> Counts {
        var counts = Counts()
        let select = try db.cachedStatement(sql: "SELECT hash, deleted_at IS NOT NULL FROM records WHERE source_id = ? AND key = ?")
        let insert = try db.cachedStatement(sql: """
            INSERT INTO records (source_id, key, data, hash, created_at, updated_at, sync_id, seen_sync_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let update = try db.cachedStatement(sql: """
            UPDATE records SET data = ?, hash = ?, updated_at = ?, deleted_at = NULL, sync_id = ?, seen_sync_id = ?
            WHERE source_id = ? AND key = ?
            """)
        let touch = try db.cachedStatement(sql: "UPDATE records SET seen_sync_id = ? WHERE source_id = ? AND key = ?")
        for record in records {
            let hash = ContentHash.of(record.data)
            if let row = try Row.fetchOne(select, arguments: [sourceID, record.key]) {
                let oldHash: Int64 = row[0]
                let wasDeleted: Bool = row[1]
                if oldHash == hash && !wasDeleted {
                    try touch.execute(arguments: [syncID, sourceID, record.key])
                    counts.unchanged += 1
                } else {
                    try update.execute(arguments: [Data(record.data), hash, now, syncID, syncID, sourceID, record.key])
                    counts.updated += 1
                }
            } else {
                try insert.execute(arguments: [sourceID, record.key, Data(record.data), hash, now, now, syncID, syncID])
                counts.created += 1
            }
        }
        return counts
    }
}
