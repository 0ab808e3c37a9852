import Foundation
import GRDB
import GRDBSQLite
import SyncCore

/// Upserts one page of records and counts what changed, each record once per sync.
///
/// The hot path of every sync, so it talks to SQLite's C API through GRDB's cached
/// statements: binding through `StatementArguments` and reading `Row`s per record cost
/// more than SQLite itself. Measured with `tributary-bench commit` (docs/benchmarks.md),
/// each step here was chosen over an alternative:
/// - no `RETURNING` (SQLite materialises it per statement; it doubled the page time);
/// - `INSERT … ON CONFLICT DO NOTHING` first: `changes() == 1` means created, one
///   statement per new record;
/// - on a conflict, `UPDATE … WHERE hash differs or deleted`, for a record this sync has not
///   seen yet: `changes() == 1` means updated;
/// - else stamp it as seen by this sync: `changes() == 1` means unchanged;
/// - else this sync already wrote it on an earlier page: write the later version if it
///   differs, and count nothing (a record counts once per sync).
enum SQLiteRecordWriter {
    static let insertSQL = """
        INSERT INTO records (source_seq, key, data, hash, created_at, updated_at, sync_seq, seen_sync_seq)
        VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?6)
        ON CONFLICT (source_seq, key) DO NOTHING
        """
    static let updateSQL = """
        UPDATE records SET data = ?3, hash = ?4, updated_at = ?5, sync_seq = ?6, seen_sync_seq = max(seen_sync_seq, ?6), deleted_at = NULL
        WHERE source_seq = ?1 AND key = ?2 AND seen_sync_seq <> ?6 AND (hash <> ?4 OR deleted_at IS NOT NULL)
        """
    static let touchSQL = "UPDATE records SET seen_sync_seq = max(seen_sync_seq, ?6) WHERE source_seq = ?1 AND key = ?2 AND seen_sync_seq <> ?6"
    static let repeatSQL = """
        UPDATE records SET data = ?3, hash = ?4, updated_at = ?5, sync_seq = ?6
        WHERE source_seq = ?1 AND key = ?2 AND hash <> ?4
        """

    /// SQLite copies bound values it must keep (`SQLITE_TRANSIENT`).
    static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    static func upsert(_ records: [SourceRecord], sourceSeq: Int64, syncSeq: Int64, now: Double, db: Database) throws -> UpsertCounts {
        var counts = UpsertCounts()
        let connection = db.sqliteConnection
        let insert = try db.cachedStatement(sql: insertSQL).sqliteStatement
        let update = try db.cachedStatement(sql: updateSQL).sqliteStatement
        let touch = try db.cachedStatement(sql: touchSQL).sqliteStatement
        let again = try db.cachedStatement(sql: repeatSQL).sqliteStatement
        let all = [insert, update, touch, again]
        for handle in all { sqlite3_reset(handle) }
        defer {
            for handle in all {
                sqlite3_reset(handle)
                sqlite3_clear_bindings(handle)
            }
        }
        func check(_ code: Int32, _ handle: OpaquePointer?) throws {
            guard code == SQLITE_OK || code == SQLITE_DONE else {
                let message = String(cString: sqlite3_errmsg(connection))
                sqlite3_reset(handle)
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message)
            }
        }
        // Values shared by the whole page are bound once; SQLite keeps bindings across resets.
        for handle in all {
            try check(sqlite3_bind_int64(handle, 1, sourceSeq), handle)
            if sqlite3_bind_parameter_count(handle) >= 5 { try check(sqlite3_bind_double(handle, 5, now), handle) }
            if sqlite3_bind_parameter_count(handle) >= 6 { try check(sqlite3_bind_int64(handle, 6, syncSeq), handle) }
        }
        func run(_ handle: OpaquePointer?) throws -> Int32 {
            let code = sqlite3_step(handle)
            sqlite3_reset(handle)
            try check(code, handle)
            return sqlite3_changes(connection)
        }
        for record in records {
            let hash = ContentHash.of(record.data)
            let keyLength = Int32(clamping: record.key.utf8.count)
            try record.data.withUnsafeBufferPointer { data in
                /// Binds this record's key (?2) and, unless the statement is `touch`, its bytes (?3) and hash (?4).
                func bound(_ handle: OpaquePointer?) -> OpaquePointer? {
                    sqlite3_bind_text(handle, 2, record.key, keyLength, transient)
                    if handle != touch {
                        sqlite3_bind_blob(handle, 3, data.baseAddress, Int32(clamping: data.count), transient)
                        sqlite3_bind_int64(handle, 4, hash)
                    }
                    return handle
                }
                if try run(bound(insert)) == 1 {
                    counts.created += 1
                } else if try run(bound(update)) == 1 {
                    counts.updated += 1
                } else if try run(bound(touch)) == 1 {
                    counts.unchanged += 1
                } else {
                    _ = try run(bound(again))
                }
            }
        }
        return counts
    }

    /// Stamps existing records as seen by a full sync without changing them (keys the sync
    /// read as record errors).
    static func markSeen(_ keys: [String], sourceSeq: Int64, syncSeq: Int64, db: Database) throws {
        guard !keys.isEmpty else { return }
        // Keys are bound by length through the C API: GRDB binds a String as a C string, which
        // ends at the first U+0000 and would stamp another key.
        let handle = try db.cachedStatement(sql: "UPDATE records SET seen_sync_seq = max(seen_sync_seq, ?3) WHERE source_seq = ?1 AND key = ?2").sqliteStatement
        defer {
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
        }
        sqlite3_reset(handle)
        sqlite3_bind_int64(handle, 1, sourceSeq)
        sqlite3_bind_int64(handle, 3, syncSeq)
        for key in keys {
            sqlite3_bind_text(handle, 2, key, Int32(clamping: key.utf8.count), transient)
            let code = sqlite3_step(handle)
            sqlite3_reset(handle)
            guard code == SQLITE_DONE else {
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
            }
        }
    }
}
