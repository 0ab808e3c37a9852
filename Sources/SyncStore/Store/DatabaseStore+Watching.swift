import Foundation
import SyncCore

extension DatabaseStore: SyncWatching {
    public func syncs(ids: [String]) async throws -> [Sync] {
        guard !ids.isEmpty else { return [] }
        return try await driver.read(["SELECT * FROM syncs WHERE id \(in: ids)"])[0].map { try RowCoding.sync($0, attempts: []) }
    }

    public func syncActivity(since: Date, sourceID: String?, limit: Int) async throws -> [Sync] {
        let t = since.timeIntervalSince1970
        let source: StoreSQL = sourceID.map { "AND source_id = \($0)" } ?? ""
        // Ids begin with their creation time: the syncs created since `since` are a range of
        // the primary key.
        let firstID = Identifier.floor("syn", at: since)
        let rows = try await driver.read([
            "SELECT * FROM syncs WHERE status = \(SyncStatus.running) \(sql: source)",
            "SELECT * FROM syncs WHERE id >= \(firstID) \(sql: source) ORDER BY id DESC LIMIT \(limit)",
            """
            SELECT * FROM syncs \(sqlite: "INDEXED BY syncs_finished", postgres: "")
            WHERE \(raw: SchemaVocabulary.isTerminal) AND finished_at >= \(t) \(sql: source)
            ORDER BY finished_at DESC LIMIT \(limit)
            """,
        ])
        var seen = Set<String>()
        var out: [Sync] = []
        for set in rows.sets {
            for row in set {
                let sync = try RowCoding.sync(row, attempts: [])
                if seen.insert(sync.id).inserted { out.append(sync) }
            }
        }
        return out
    }
}
