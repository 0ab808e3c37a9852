import Logging
import NIOCore
import PostgresNIO
import SyncCore

/// Upserts one page of records in one statement and counts what changed.
///
/// The page travels as three arrays (keys, bytes, hashes) unnested server-side: one
/// round trip per page instead of one per record. `ON CONFLICT … DO UPDATE … WHERE`
/// writes only records whose hash changed (or that come back from deleted);
/// `RETURNING (xmax = 0)` tells an insert from an update, and the rest are unchanged.
/// A full sync then stamps the unchanged rows as seen in a second statement.
enum PostgresRecordWriter {
    static func upsert(
        _ records: [SourceRecord], sourceSeq: Int64, syncSeq: Int64, markSeen: Bool, now: Double,
        connection: PostgresConnection, logger: Logger
    ) async throws -> UpsertCounts {
        var counts = UpsertCounts()
        // One statement cannot touch a row twice, so a page that repeats a key is written in
        // rounds of distinct keys, in order: the later version wins, as it does in SQLite.
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
                    WHERE r.hash <> EXCLUDED.hash OR r.deleted_at IS NOT NULL
                    RETURNING (xmax = 0) AS inserted
                )
                SELECT count(*) FILTER (WHERE inserted) AS created, count(*) FILTER (WHERE NOT inserted) AS updated FROM written
                """, logger: logger)
            let created = try row?.int("created") ?? 0
            let updated = try row?.int("updated") ?? 0
            counts.created += created
            counts.updated += updated
            counts.unchanged += round.count - created - updated
            if markSeen && round.count > created + updated {
                try await connection.run("""
                    UPDATE records SET seen_sync_seq = \(syncSeq)
                    WHERE source_seq = \(sourceSeq) AND key = ANY(\(keys)::text[]) AND seen_sync_seq <> \(syncSeq)
                    """, logger: logger)
            }
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
