import SyncCore

/// Migration 11, "sync changes": each sync keeps the stretch of its source's change feed its
/// writes took, and the outbox trigger also writes a `records.changed` delivery when a sync
/// that changed records ends (docs/webhooks.md).
///
/// - `syncs.change_from`: the source's feed head before the sync's first change;
///   `syncs.change_to`: the head after its last. Both `NULL` while it changed nothing. Set by
///   the page and end writes, in their transactions, under the feed row's lock.
/// - `syncs_notify` writes, besides the `sync.<status>` deliveries, one `records.changed`
///   delivery per webhook that asked for it when the sync reaches a terminal status with a
///   range; the snapshot now carries the range.
enum SyncChangesSchema {
    static let event = WebhookEvent.recordsChanged.rawValue
    /// The sync snapshot's columns from this migration on.
    static let snapshotColumns = SyncRows.syncSnapshotColumns + ["change_from", "change_to"]
    static let endsWithChanges = "NEW.change_to IS NOT NULL AND NEW.status IN (\(SchemaVocabulary.terminal))"

    static let sqlite = """
        ALTER TABLE syncs ADD COLUMN change_from INTEGER;
        ALTER TABLE syncs ADD COLUMN change_to INTEGER;
        DROP TRIGGER syncs_notify;
        CREATE TRIGGER syncs_notify AFTER UPDATE OF status ON syncs
        WHEN NEW.notify AND NEW.status <> OLD.status AND NEW.status IN (\(SchemaVocabulary.notified))
        BEGIN
            \(sqliteDeliveries(event: "'sync.' || NEW.status", wanted: "NEW.status", when: "1"));
            \(sqliteDeliveries(event: "'\(event)'", wanted: "'\(event)'", when: endsWithChanges));
        END;
        """

    /// One delivery per webhook of the sync's source whose events hold `wanted`, when `when`.
    static func sqliteDeliveries(event: String, wanted: String, when: String) -> String {
        """
        INSERT INTO webhook_deliveries (sync_id, source_id, event, url, secret, sync_snapshot, created_at, next_attempt_at, receiver)
            SELECT NEW.id, NEW.source_id, \(event), json_extract(hook.value, '$.url'), json_extract(hook.value, '$.secret'),
                   json_object(\(snapshotColumns.map { "'\($0)', NEW.\($0)" }.joined(separator: ", "))),
                   (julianday('now') - 2440587.5) * 86400.0, (julianday('now') - 2440587.5) * 86400.0,
                   COALESCE(json_extract(hook.value, '$.receiver'), json_extract(hook.value, '$.url'))
            FROM sources s, json_each(s.notify) AS hook
            WHERE \(when) AND s.id = NEW.source_id AND s.notify IS NOT NULL
              AND EXISTS (SELECT 1 FROM json_each(hook.value, '$.events') AS e WHERE e.value = \(wanted))
        """
    }

    static let postgres = [
        "ALTER TABLE syncs ADD COLUMN change_from bigint",
        "ALTER TABLE syncs ADD COLUMN change_to bigint",
        """
        CREATE OR REPLACE FUNCTION tributary_syncs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            \(postgresDeliveries(event: "'sync.' || NEW.status", wanted: "NEW.status", when: "true"));
            \(postgresDeliveries(event: "'\(event)'", wanted: "'\(event)'", when: endsWithChanges));
            RETURN NULL;
        END
        $$
        """,
    ]

    static func postgresDeliveries(event: String, wanted: String, when: String) -> String {
        """
        INSERT INTO webhook_deliveries (sync_id, source_id, event, url, secret, sync_snapshot, created_at, next_attempt_at, receiver)
            SELECT NEW.id, NEW.source_id, \(event), hook->>'url', hook->>'secret', row_to_json(NEW)::text, t.now, t.now,
                   COALESCE(hook->>'receiver', hook->>'url')
            FROM sources s CROSS JOIN LATERAL jsonb_array_elements(s.notify::jsonb) AS hook
                 CROSS JOIN (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) AS t
            WHERE \(when) AND s.id = NEW.source_id AND s.notify IS NOT NULL AND hook->'events' ? \(wanted)
        """
    }

    /// The range columns after a write: `from` is the head before it, `to` after it (SQL
    /// expressions, both `NULL` when it changed nothing, which keeps what is stored); the
    /// sync's first change sets `change_from`.
    static func syncColumns(from: String, to: String) -> String {
        "change_from = COALESCE(change_from, \(from)), change_to = COALESCE(\(to), change_to)"
    }
}
