import SyncCore

/// The transactional page commit, written once for both drivers: the fence they read, the
/// record errors and progress they write. (The one-statement paths on PostgreSQL build
/// their statements from the same pieces.)
enum PageWrite {
    /// The leased, running sync with what the page needs of it (its mode, seqs and stored
    /// page count), its row locked on PostgreSQL until the commit: a rescuer cannot take the
    /// lease meanwhile. No row: the lease is lost.
    static func fence(_ lease: Lease) -> StoreSQL {
        """
        SELECT syncs.source_id, syncs.mode, syncs.seq AS sync_seq, sources.seq AS source_seq, syncs.pages
        FROM syncs JOIN sources ON sources.id = syncs.source_id
        WHERE syncs.id = \(lease.syncID) AND syncs.lease_token = \(lease.token) AND syncs.status = 'running'
        \(sqlite: "", postgres: "FOR UPDATE OF syncs")
        """
    }

    /// What the fence row says.
    struct Fence {
        var sourceID: String
        var fullMode: Bool
        var sourceSeq: Int64
        var syncSeq: Int64
        /// Where the page stands against the stored ones (a retried commit that landed counts once).
        var order: StoreRules.PageOrder

        init(_ row: some StoreRow, pageNumber: Int) throws {
            sourceID = try row.string("source_id")
            fullMode = try row.string("mode") == SyncMode.full.rawValue
            sourceSeq = Int64(try row.int("source_seq"))
            syncSeq = Int64(try row.int("sync_seq"))
            order = StoreRules.order(of: pageNumber, storedPages: try row.int("pages"))
        }
    }

    /// One record that could not be stored.
    static func recordError(_ error: RecordError, syncID: String) -> StoreSQL {
        """
        INSERT INTO record_errors (sync_id, page, record_key, message)
        VALUES (\(syncID), \(error.page), \(error.recordKey), \(error.message))
        """
    }
}

/// What upserting a page did to the record store: the counters both record writers return.
/// A key this sync already wrote on an earlier page (or earlier on the page) is in none of
/// them: a record counts once per sync.
struct UpsertCounts {
    var created = 0
    var updated = 0
    var unchanged = 0
    /// How many change numbers the page took (records written, a later version of a record
    /// this sync wrote before included).
    var changes: Int64 = 0
    /// The stretch of the feed the page's changes took (`nil` when it changed nothing).
    var range: SyncChanges?
    /// The page's records read for the first time in this sync.
    var read: Int { created + updated + unchanged }

    /// Counts a write that took the feed from `base` to `top` (when it changed something).
    mutating func took(changed: Int64, base: Int64, top: Int64) {
        guard changed > 0 else { return }
        changes += changed
        range = SyncChanges(from: range?.from ?? base, to: top)
    }
}

/// What a committed page adds to its sync, written by both drivers with this `SET` list
/// over their own spellings: a record counts as read once per sync (`read` is the upsert's
/// created + updated + unchanged), and the page's record errors count as read and failed.
enum PageProgress {
    static func syncColumns(created: String, updated: String, unchanged: String, recordErrors: String, bytesRead: String,
                            checkpoint: String, now: String) -> String {
        """
        pages = pages + 1, records_read = records_read + \(created) + \(updated) + \(unchanged) + \(recordErrors),
            records_created = records_created + \(created), records_updated = records_updated + \(updated),
            records_unchanged = records_unchanged + \(unchanged), records_failed = records_failed + \(recordErrors),
            bytes_read = bytes_read + \(bytesRead), checkpoint = \(checkpoint), checkpoint_at = \(now), heartbeat_at = \(now)
        """
    }
}
