import SyncCore

/// Migration 10, "change feed": every record carries its source's change number, and each
/// source has a feed row (docs/api.md, "Change feed").
///
/// - `records.change_seq`: the number of the record's last change (created, updated, marked
///   deleted or back from deleted). Only the source's record writers give numbers, each
///   under the source's feed row lock, so a source's numbers commit in order.
/// - `record_feeds(source_seq, head, floor)`: `head` is the last number given; a cursor below
///   `floor` was issued before the source's records were reset and is expired.
/// - `tributary_records`: the documented read-only view for SQL access (docs/data-access.md).
///
/// Records stored before the migration are numbered in the order they last changed.
enum ChangeFeedSchema {
    static let sqlite = """
        ALTER TABLE records ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
        UPDATE records SET change_seq = numbered.n
        FROM (SELECT source_seq, key, row_number() OVER (PARTITION BY source_seq ORDER BY updated_at, key) AS n FROM records) AS numbered
        WHERE records.source_seq = numbered.source_seq AND records.key = numbered.key;
        CREATE TABLE record_feeds (
            source_seq INTEGER PRIMARY KEY,
            head INTEGER NOT NULL,
            floor INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO record_feeds (source_seq, head) SELECT source_seq, MAX(change_seq) FROM records GROUP BY source_seq;
        CREATE INDEX records_changes ON records(source_seq, change_seq);
        CREATE VIEW tributary_records AS
        SELECT s.id AS source_id, s.name AS source_name, r.key AS key, CAST(r.data AS TEXT) AS body,
               r.change_seq AS change, sy.id AS sync_id,
               strftime('%Y-%m-%dT%H:%M:%fZ', r.created_at, 'unixepoch') AS created_at,
               strftime('%Y-%m-%dT%H:%M:%fZ', r.updated_at, 'unixepoch') AS updated_at,
               strftime('%Y-%m-%dT%H:%M:%fZ', r.deleted_at, 'unixepoch') AS deleted_at
        FROM records r JOIN sources s ON s.seq = r.source_seq LEFT JOIN syncs sy ON sy.seq = r.sync_seq;
        """

    static let postgres = [
        "ALTER TABLE records ADD COLUMN change_seq bigint NOT NULL DEFAULT 0",
        """
        UPDATE records SET change_seq = numbered.n
        FROM (SELECT source_seq, key, row_number() OVER (PARTITION BY source_seq ORDER BY updated_at, key) AS n FROM records) AS numbered
        WHERE records.source_seq = numbered.source_seq AND records.key = numbered.key
        """,
        """
        CREATE TABLE record_feeds (
            source_seq bigint PRIMARY KEY,
            head bigint NOT NULL,
            floor bigint NOT NULL DEFAULT 0
        )
        """,
        "INSERT INTO record_feeds (source_seq, head) SELECT source_seq, MAX(change_seq) FROM records GROUP BY source_seq",
        "CREATE INDEX records_changes ON records(source_seq, change_seq)",
        """
        CREATE VIEW tributary_records AS
        SELECT s.id AS source_id, s.name AS source_name, r.key AS key, convert_from(r.data, 'UTF8')::jsonb AS body,
               r.change_seq AS change, sy.id AS sync_id,
               to_timestamp(r.created_at) AS created_at, to_timestamp(r.updated_at) AS updated_at,
               to_timestamp(r.deleted_at) AS deleted_at
        FROM records r JOIN sources s ON s.seq = r.source_seq LEFT JOIN syncs sy ON sy.seq = r.sync_seq
        """,
    ]
}

/// The change feed's shared SQL (both stores write and read it alike).
enum ChangeFeed {
    /// Marks records matching `condition` (over `records`) deleted, numbering them after
    /// `base` in key order: `FROM` a numbered list of their keys, so each takes one number.
    /// `extraSet` adds columns (the sync that deleted them).
    static func markDeleted(sourceSeq: String, condition: String, base: String, now: String, extraSet: String = "") -> String {
        """
        UPDATE records SET deleted_at = \(now), updated_at = \(now), change_seq = \(base) + gone.n\(extraSet)
        FROM (SELECT key, row_number() OVER (ORDER BY key) AS n FROM records WHERE \(condition)) AS gone
        WHERE records.source_seq = \(sourceSeq) AND records.key = gone.key
        """
    }

    /// Advances a source's head by `count` (creating its feed row at need).
    static func advance(sourceSeq: String, count: String) -> String {
        """
        INSERT INTO record_feeds AS f (source_seq, head) VALUES (\(sourceSeq), \(count))
        ON CONFLICT (source_seq) DO UPDATE SET head = f.head + excluded.head
        """
    }

    /// What a change is, from the record's row: marked deleted, created (never written
    /// since it was inserted) or updated.
    static let op = "CASE WHEN records.deleted_at IS NOT NULL THEN 'deleted' WHEN records.created_at = records.updated_at THEN 'created' ELSE 'updated' END"

    /// The `op` filter's conditions.
    static func condition(op: ChangeOp) -> String {
        switch op {
        case .deleted: "records.deleted_at IS NOT NULL"
        case .created: "records.deleted_at IS NULL AND records.created_at = records.updated_at"
        case .updated: "records.deleted_at IS NULL AND records.created_at <> records.updated_at"
        }
    }
}
