import Foundation
import SyncCore

extension DatabaseStore: DashboardReader {
    public func recordPreviews(sourceID: String, limit: Int, after: String?, prefixBytes: Int) async throws -> [RecordPreview] {
        let n = max(1, prefixBytes)
        // The length as text: PostgreSQL has no substring(bytea, int, bigint) for a bound int8.
        let prefix: StoreSQL = "\(sqlite: "substr(records.data, 1, \(n))", postgres: "substring(records.data from 1 for \(n))")"
        let rows = try await driver.read(["""
            SELECT records.key, \(sql: prefix) AS prefix, length(records.data) AS size, records.updated_at, syncs.id AS sync_id
            FROM records LEFT JOIN syncs ON syncs.seq = records.sync_seq
            WHERE records.source_seq = (SELECT seq FROM sources WHERE id = \(sourceID)) AND records.key > \(after ?? "")
              AND records.deleted_at IS NULL
            ORDER BY records.key LIMIT \(limit)
            """])
        return try rows[0].map { row in
            RecordPreview(key: try row.string("key"), prefix: try row.bytes("prefix"), size: try row.int("size"),
                          updatedAt: Date(timeIntervalSince1970: try row.double("updated_at")), syncID: try row.optionalString("sync_id"))
        }
    }

    public func finishedBuckets(since: Date, bucketSeconds: Double) async throws -> [FinishedBucket] {
        let start = since.timeIntervalSince1970, width = max(1, bucketSeconds)
        // Truncation, not rounding (PostgreSQL's cast to an integer rounds); through the
        // finished_at index as the statistics read it.
        let bucket: StoreSQL = "\(sqlite: "CAST((finished_at - \(start)) / \(width) AS INTEGER)", postgres: "floor((finished_at - \(start)) / \(width))::int8")"
        let byEnd: StoreSQL = "\(sqlite: "INDEXED BY syncs_finished", postgres: "")"
        let rows = try await driver.read(["""
            SELECT \(sql: bucket) AS b, status, COUNT(*) AS n FROM syncs \(sql: byEnd)
            WHERE \(raw: SchemaVocabulary.isTerminal) AND finished_at >= \(start)
            GROUP BY 1, 2 ORDER BY 1
            """])
        var buckets: [Int: FinishedBucket] = [:]
        for row in rows[0] {
            let index = try row.int("b"), n = try row.int("n")
            var b = buckets[index] ?? FinishedBucket(index: index)
            switch SyncStatus(rawValue: try row.string("status")) {
            case .completed: b.completed += n
            case .failed: b.failed += n
            case .cancelled: b.cancelled += n
            default: break
            }
            buckets[index] = b
        }
        return buckets.values.sorted { $0.index < $1.index }
    }

    public func sourceNames(ids: [String]) async throws -> [String: String] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await driver.read(["SELECT id, name FROM sources WHERE id \(in: Array(Set(ids)))"])
        var names: [String: String] = [:]
        for row in rows[0] { names[try row.string("id")] = try row.string("name") }
        return names
    }

    public func recordCounts(sourceIDs: [String]) async throws -> [String: Int] {
        guard !sourceIDs.isEmpty else { return [:] }
        let rows = try await driver.read(["""
            SELECT sources.id AS id, (SELECT COUNT(*) FROM records WHERE records.source_seq = sources.seq AND records.deleted_at IS NULL) AS n
            FROM sources WHERE sources.id \(in: Array(Set(sourceIDs)))
            """])
        var counts: [String: Int] = [:]
        for row in rows[0] { counts[try row.string("id")] = try row.int("n") }
        return counts
    }
}
