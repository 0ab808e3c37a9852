import Logging
import NIOCore
import PostgresNIO
import SyncCore

/// Upserts one page of records in one statement (``PostgresStatements/UpsertPage``) and counts what changed.
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
            let statement = PostgresStatements.UpsertPage(
                keys: keys, data: data, hashes: hashes, sourceSeq: sourceSeq, syncSeq: syncSeq, now: now)
            let row = try await connection.first(statement, logger: logger)
            counts.created += try row?.int("created") ?? 0
            counts.updated += try row?.int("updated") ?? 0
            counts.unchanged += try row?.int("unchanged") ?? 0
            if let row {
                let top = Int64(try row.int("top"))
                counts.took(changed: Int64(try row.int("changed")), base: top - Int64(keys.count), top: top)
            }
        }
        return counts
    }

    /// Stamps existing records as seen by a full sync without changing them (keys the sync
    /// read as record errors).
    static func markSeen(_ keys: [String], sourceSeq: Int64, syncSeq: Int64, connection: PostgresConnection, logger: Logger) async throws {
        guard !keys.isEmpty else { return }
        try await connection.run("""
            UPDATE records SET seen_sync_seq = GREATEST(seen_sync_seq, \(syncSeq))
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
        var seen = Set<BytewiseString>()
        for index in records.indices {
            if !seen.insert(BytewiseString(records[index].key)).inserted {
                rounds.append(records[start..<index])
                start = index
                seen = [BytewiseString(records[index].key)]
            }
        }
        if start < records.endIndex || rounds.isEmpty { rounds.append(records[start..<records.endIndex]) }
        return rounds.filter { !$0.isEmpty }
    }
}
