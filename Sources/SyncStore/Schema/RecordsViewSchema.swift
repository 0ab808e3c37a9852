/// Migration 12, "records view": `tributary_records` (docs/data-access.md) reads every stored
/// record on both stores and gains `body_text`, the body exactly as stored.
///
/// PostgreSQL's `jsonb` cannot hold every JSON text Tributary stores: a `\u0000` escape or a
/// lone surrogate (`\ud800`) is valid JSON but not valid `jsonb`, and one such record made
/// every read of the view fail. A body with a `\u` escape is now cast by a function that
/// answers `NULL` where `jsonb` refuses it; the others are cast directly (no subtransaction).
enum RecordsViewSchema {
    static let columns = """
        s.id AS source_id, s.name AS source_name, r.key AS key, %BODY% AS body,
               r.change_seq AS change, sy.id AS sync_id,
               %CREATED% AS created_at, %UPDATED% AS updated_at, %DELETED% AS deleted_at, %TEXT% AS body_text
        """

    static let sqlite = """
        DROP VIEW tributary_records;
        CREATE VIEW tributary_records AS
        SELECT \(columns
            .replacingOccurrences(of: "%BODY%", with: "CAST(r.data AS TEXT)")
            .replacingOccurrences(of: "%CREATED%", with: "strftime('%Y-%m-%dT%H:%M:%fZ', r.created_at, 'unixepoch')")
            .replacingOccurrences(of: "%UPDATED%", with: "strftime('%Y-%m-%dT%H:%M:%fZ', r.updated_at, 'unixepoch')")
            .replacingOccurrences(of: "%DELETED%", with: "strftime('%Y-%m-%dT%H:%M:%fZ', r.deleted_at, 'unixepoch')")
            .replacingOccurrences(of: "%TEXT%", with: "CAST(r.data AS TEXT)"))
        FROM records r JOIN sources s ON s.seq = r.source_seq LEFT JOIN syncs sy ON sy.seq = r.sync_seq;
        """

    static let postgres = [
        """
        CREATE FUNCTION tributary_jsonb(data bytea) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        BEGIN
            RETURN convert_from(data, 'UTF8')::jsonb;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE OR REPLACE VIEW tributary_records AS
        SELECT \(columns
            .replacingOccurrences(of: "%BODY%", with: #"CASE WHEN position('\x5c75'::bytea IN r.data) = 0 THEN convert_from(r.data, 'UTF8')::jsonb ELSE tributary_jsonb(r.data) END"#)
            .replacingOccurrences(of: "%CREATED%", with: "to_timestamp(r.created_at)")
            .replacingOccurrences(of: "%UPDATED%", with: "to_timestamp(r.updated_at)")
            .replacingOccurrences(of: "%DELETED%", with: "to_timestamp(r.deleted_at)")
            .replacingOccurrences(of: "%TEXT%", with: "convert_from(r.data, 'UTF8')"))
        FROM records r JOIN sources s ON s.seq = r.source_seq LEFT JOIN syncs sy ON sy.seq = r.sync_seq
        """,
    ]
}
