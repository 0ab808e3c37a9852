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
/// - records whose keys are new (a first sync) 64 to a plain multi-row `INSERT`, which
///   SQLite undoes whole at the first known key: one statement step per 64 records won
///   back what the change feed's second index cost a first sync;
/// - else `INSERT … ON CONFLICT DO NOTHING` first: `changes() == 1` means created, one
///   statement per new record;
/// - on a conflict, `UPDATE … WHERE hash differs or deleted`, for a record this sync has not
///   seen yet: `changes() == 1` means updated;
/// - else stamp it as seen by this sync: `changes() == 1` means unchanged;
/// - else this sync already read it on an earlier page: write the later version if it
///   differs; one counted unchanged then moves to updated, one created or updated is
///   counted once (a record counts once per sync).
enum SQLiteRecordWriter {
    static let insertSQL = """
        INSERT INTO records (source_seq, key, data, hash, created_at, updated_at, sync_seq, seen_sync_seq, change_seq)
        VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?6, ?7)
        ON CONFLICT (source_seq, key) DO NOTHING
        """
    static let updateSQL = """
        UPDATE records SET data = ?3, hash = ?4, updated_at = ?5, sync_seq = ?6, seen_sync_seq = max(seen_sync_seq, ?6), deleted_at = NULL,
            change_seq = ?7
        WHERE source_seq = ?1 AND key = ?2 AND seen_sync_seq <> ?6 AND (hash <> ?4 OR deleted_at IS NOT NULL)
        """
    static let touchSQL = "UPDATE records SET seen_sync_seq = max(seen_sync_seq, ?6) WHERE source_seq = ?1 AND key = ?2 AND seen_sync_seq <> ?6"
    /// A later version of a record this sync counted unchanged: it is updated after all.
    static let repeatUnchangedSQL = """
        UPDATE records SET data = ?3, hash = ?4, updated_at = ?5, sync_seq = ?6, change_seq = ?7
        WHERE source_seq = ?1 AND key = ?2 AND hash <> ?4 AND sync_seq <> ?6
        """
    static let repeatSQL = """
        UPDATE records SET data = ?3, hash = ?4, updated_at = ?5, sync_seq = ?6, change_seq = ?7
        WHERE source_seq = ?1 AND key = ?2 AND hash <> ?4
        """

    /// Records per statement of the bulk insert (four parameters each, after ?1–?9).
    static let bulkRows = 64
    /// A plain multi-row insert of ``bulkRows`` records whose keys are new to the source:
    /// one statement step instead of 64. SQLite undoes it whole at the first key that
    /// exists (the `PRIMARY KEY` constraint), and those records take the per-record path.
    static let bulkInsertSQL: String = """
        INSERT INTO records (source_seq, key, data, hash, created_at, updated_at, sync_seq, seen_sync_seq, change_seq) VALUES
        """ + (0..<bulkRows).map { i in
            let p = 10 + i * 4
            return "(?1, ?\(p), ?\(p + 1), ?\(p + 2), ?5, ?5, ?6, ?6, ?\(p + 3))"
        }.joined(separator: ", ")

    /// SQLite copies bound values it must keep (`SQLITE_TRANSIENT`).
    static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    /// Each record written takes the source's next change number, from `head + 1` on; the
    /// counts say how many were taken (``UpsertCounts/changes``).
    static func upsert(_ records: [SourceRecord], sourceSeq: Int64, syncSeq: Int64, head: Int64, now: Double, db: Database) throws -> UpsertCounts {
        var counts = UpsertCounts()
        var next = head + 1
        let connection = db.sqliteConnection
        let insert = try db.cachedStatement(sql: insertSQL).sqliteStatement
        let update = try db.cachedStatement(sql: updateSQL).sqliteStatement
        let touch = try db.cachedStatement(sql: touchSQL).sqliteStatement
        let againUnchanged = try db.cachedStatement(sql: repeatUnchangedSQL).sqliteStatement
        let again = try db.cachedStatement(sql: repeatSQL).sqliteStatement
        let all = [insert, update, touch, againUnchanged, again]
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
        // A first sync's records go ``bulkRows`` to a statement while their keys are new; the
        // first chunk that meets a known key (or a key repeated within it), and the rest of
        // the page, take the per-record path, which tells created from updated and unchanged.
        var start = records.startIndex
        if records.count >= bulkRows {
            let bulk = try db.cachedStatement(sql: bulkInsertSQL).sqliteStatement
            defer {
                sqlite3_reset(bulk)
                sqlite3_clear_bindings(bulk)
            }
            try check(sqlite3_bind_int64(bulk, 1, sourceSeq), bulk)
            try check(sqlite3_bind_double(bulk, 5, now), bulk)
            try check(sqlite3_bind_int64(bulk, 6, syncSeq), bulk)
            while records.endIndex - start >= bulkRows {
                for i in 0..<bulkRows {
                    let record = records[start + i]
                    let p = Int32(10 + i * 4)
                    sqlite3_bind_text(bulk, p, record.key, Int32(clamping: record.key.utf8.count), transient)
                    record.data.withUnsafeBufferPointer { data in
                        _ = sqlite3_bind_blob(bulk, p + 1, data.baseAddress, Int32(clamping: data.count), transient)
                    }
                    sqlite3_bind_int64(bulk, p + 2, ContentHash.of(record.data))
                    sqlite3_bind_int64(bulk, p + 3, next + Int64(i))
                }
                let code = sqlite3_step(bulk)
                sqlite3_reset(bulk)
                if code & 0xff == SQLITE_CONSTRAINT { break }
                try check(code, bulk)
                counts.created += bulkRows
                next += Int64(bulkRows)
                start += bulkRows
            }
        }
        for record in records[start...] {
            let hash = ContentHash.of(record.data)
            let keyLength = Int32(clamping: record.key.utf8.count)
            try record.data.withUnsafeBufferPointer { data in
                /// Binds this record's key (?2) and, unless the statement is `touch`, its bytes (?3) and hash (?4).
                func bound(_ handle: OpaquePointer?) -> OpaquePointer? {
                    sqlite3_bind_text(handle, 2, record.key, keyLength, transient)
                    if handle != touch {
                        sqlite3_bind_blob(handle, 3, data.baseAddress, Int32(clamping: data.count), transient)
                        sqlite3_bind_int64(handle, 4, hash)
                        sqlite3_bind_int64(handle, 7, next)
                    }
                    return handle
                }
                if try run(bound(insert)) == 1 {
                    counts.created += 1
                    next += 1
                } else if try run(bound(update)) == 1 {
                    counts.updated += 1
                    next += 1
                } else if try run(bound(touch)) == 1 {
                    counts.unchanged += 1
                } else if try run(bound(againUnchanged)) == 1 {
                    // Counted unchanged on an earlier page of this sync: updated instead.
                    counts.unchanged -= 1
                    counts.updated += 1
                    next += 1
                } else if try run(bound(again)) == 1 {
                    next += 1
                }
            }
        }
        counts.changes = next - head - 1
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
