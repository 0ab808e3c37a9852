import SyncConnectors
import SyncCore
import SyncStore

/// A child stream's parents, read from the record store: live records in key order.
struct StoreParentRecords: ParentRecords {
    let store: any RecordReader & SourceCatalog

    func sourceID(of source: String) async throws -> String? {
        try await store.source(idOrName: source)?.id
    }

    func liveRecords(sourceID: String, after: String?, limit: Int) async throws -> [(key: String, data: [UInt8])] {
        try await store.records(sourceID: sourceID, limit: limit, after: after, includeDeleted: false).map { ($0.key, $0.data) }
    }
}
