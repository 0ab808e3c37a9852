import Logging
import NIOCore
import PostgresNIO
import SyncCore

/// Upserts one page of records in one statement and counts what changed.
///
/// The page travels as three arrays (keys, bytes, hashes) unnested server-side: one
/// round trip per page instead of one per record. `ON CONFLICT … DO UPDATE … WHERE`
/// writes only records whose hash changed (or that come back from deleted) and that this
/// sync has not seen yet; `RETURNING (xmax = 0)` tells an insert from an update. The same
/// statement stamps unchanged records as seen and writes a later version of a record this
/// sync already wrote, without counting it twice (see ``PostgresStatements/pageCTEs``).
enum PostgresRecordWriter {
    static func upsert(
        _ records: [SourceRecord], sourceSeq: Int64, syncSeq: Int64, now: Double,
        connection: PostgresConnection, logger: Logger
    ) async throws -> UpsertCounts {
        var counts = UpsertCounts()
        // One statement cannot touch a row twice, so a page that repeats a key is written in
        // rounds of distinct keys, in order: the later version wins, as it does in SQLite.
        // (A ``PageCommit`` holds each key once; this guards direct callers.)
        for round in distinctRounds(records) {
            let (keys, data, hashes) = columns(round)
            let row = try await connection.one("""
                WITH page AS (
                    SELECT * FROM unnest(\(keys)::text[], \(data)::bytea[], \(hashes)::int8[]) AS p(key, data, hash)
                ), written AS (
                    INSERT INTO records AS r (source_seq, key, data, hash, created_at, updated_at, sync_seq, seen_sync_seq)
                    SELECT \(sourceSeq), key, data, hash, \(now), \(now), \(syncSeq), \(syncSeq) FROM page
                    ON CONFLICT (source_seq, key) DO UPDATE SET data = EXCLUDED.data, hash = EXCLUDED.hash,
                        updated_at = EXCLUDED.updated_at, sync_seq = EXCLUDED.sync_seq,
                        seen_sync_seq = EXCLUDED.seen_sync_seq, deleted_at = NULL
                    WHERE r.seen_sync_seq <> EXCLUDED.seen_sync_seq AND (r.hash <> EXCLUDED.hash OR r.deleted_at IS NOT NULL)
                    RETURNING (xmax = 0) AS inserted
                ), touched AS (
                    UPDATE records SET seen_sync_seq = \(syncSeq),
                        data = CASE WHEN records.hash <> page.hash THEN page.data ELSE records.data END,
                        updated_at = CASE WHEN records.hash <> page.hash THEN \(now) ELSE records.updated_at END,
                        sync_seq = CASE WHEN records.hash <> page.hash THEN \(syncSeq) ELSE records.sync_seq END,
                        hash = page.hash
                    FROM page
                    WHERE records.source_seq = \(sourceSeq) AND records.key = page.key AND records.deleted_at IS NULL
                      AND ((records.hash = page.hash AND records.seen_sync_seq <> \(syncSeq))
                           OR (records.seen_sync_seq = \(syncSeq) AND records.hash <> page.hash))
                    RETURNING (records.updated_at = \(now)) AS repeat
                )
                SELECT (SELECT count(*) FROM written WHERE inserted) AS created,
                       (SELECT count(*) FROM written WHERE NOT inserted) AS updated,
                       (SELECT count(*) FROM touched WHERE NOT repeat) AS unchanged
                """, logger: logger)
            counts.created += try row?.int("created") ?? 0
            counts.updated += try row?.int("updated") ?? 0
            counts.unchanged += try row?.int("unchanged") ?? 0
        }
        return counts
    }

    /// Stamps existing records as seen by a full sync without changing them (keys the sync
    /// read as record errors).
    static func markSeen(_ keys: [String], sourceSeq: Int64, syncSeq: Int64, connection: PostgresConnection, logger: Logger) async throws {
        guard !keys.isEmpty else { return }
        try await connection.run("""
            UPDATE records SET seen_sync_seq = \(syncSeq)
            WHERE source_seq = \(sourceSeq) AND key = ANY(\(keys)::text[]) AND seen_sync_seq <> \(syncSeq)
            """, logger: logger)
    }

    /// A page as the three arrays the upserts unnest.
    static func columns(_ records: some Collection<SourceRecord>) -> (keys: [String], data: [ByteBuffer], hashes: [Int64]) {
        var keys: [String] = []
        var data: [ByteBuffer] = []
        var hashes: [Int64] = []
        keys.reserveCapacity(records.count)
        data.reserveCapacity(records.count)
        hashes.reserveCapacity(records.count)
        for record in records {
            keys.append(record.key)
            data.append(ByteBuffer(bytes: record.data))
            hashes.append(ContentHash.of(record.data))
        }
        return (keys, data, hashes)
    }

    /// Splits records into consecutive runs without a repeated key (one run in the usual case).
    static func distinctRounds(_ records: [SourceRecord]) -> [ArraySlice<SourceRecord>] {
        var rounds: [ArraySlice<SourceRecord>] = []
        var start = records.startIndex
        var seen = Set<String>()
        for index in records.indices {
            if !seen.insert(records[index].key).inserted {
                rounds.append(records[start..<index])
                start = index
                seen = [records[index].key]
            }
        }
        if start < records.endIndex || rounds.isEmpty { rounds.append(records[start..<records.endIndex]) }
        return rounds.filter { !$0.isEmpty }
    }
}
