import Foundation
import SyncCore

/// The outbox of webhook deliveries, as both schemas create it (docs/webhooks.md).
enum Webhooks {
    static let pending = "'\(WebhookDelivery.Status.pending.rawValue)'"

    /// The table and its indexes, one statement each.
    /// Migration 9, "webhook receivers": each delivery names its receiver (the URL's origin,
    /// ``WebhookTarget/receiver``), which the claim shares slots by; the trigger copies it
    /// from the source's targets (a target stored before it has none: its URL stands in).
    static let receiversSQLite = """
        ALTER TABLE webhook_deliveries ADD COLUMN receiver TEXT;
        UPDATE webhook_deliveries SET receiver = url;
        DROP TRIGGER syncs_notify;
        CREATE TRIGGER syncs_notify AFTER UPDATE OF status ON syncs
        WHEN NEW.notify AND NEW.status <> OLD.status AND NEW.status IN (\(SchemaVocabulary.notified))
        BEGIN
            INSERT INTO webhook_deliveries (sync_id, source_id, event, url, secret, sync_snapshot, created_at, next_attempt_at, receiver)
            SELECT NEW.id, NEW.source_id, 'sync.' || NEW.status, json_extract(hook.value, '$.url'), json_extract(hook.value, '$.secret'),
                   json_object(\(SyncRows.syncSnapshotColumns.map { "'\($0)', NEW.\($0)" }.joined(separator: ", "))),
                   (julianday('now') - 2440587.5) * 86400.0, (julianday('now') - 2440587.5) * 86400.0,
                   COALESCE(json_extract(hook.value, '$.receiver'), json_extract(hook.value, '$.url'))
            FROM sources s, json_each(s.notify) AS hook
            WHERE s.id = NEW.source_id AND s.notify IS NOT NULL
              AND EXISTS (SELECT 1 FROM json_each(hook.value, '$.events') AS e WHERE e.value = NEW.status);
        END;
        """

    static let receiversPostgres = [
        "ALTER TABLE webhook_deliveries ADD COLUMN receiver text",
        "UPDATE webhook_deliveries SET receiver = url",
        """
        CREATE OR REPLACE FUNCTION tributary_syncs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO webhook_deliveries (sync_id, source_id, event, url, secret, sync_snapshot, created_at, next_attempt_at, receiver)
            SELECT NEW.id, NEW.source_id, 'sync.' || NEW.status, hook->>'url', hook->>'secret', row_to_json(NEW)::text, t.now, t.now,
                   COALESCE(hook->>'receiver', hook->>'url')
            FROM sources s CROSS JOIN LATERAL jsonb_array_elements(s.notify::jsonb) AS hook
                 CROSS JOIN (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) AS t
            WHERE s.id = NEW.source_id AND s.notify IS NOT NULL AND hook->'events' ? NEW.status;
            RETURN NULL;
        END
        $$
        """,
    ]

    static func outboxTable(_ dialect: SQLDialect) -> [String] {
        let text = dialect.spelling(sqlite: "TEXT", postgres: "text"), real = dialect.spelling(sqlite: "REAL", postgres: "double precision")
        let int = dialect.spelling(sqlite: "INTEGER", postgres: "integer")
        return [
            """
            CREATE TABLE webhook_deliveries (
                seq \(dialect.spelling(sqlite: "INTEGER PRIMARY KEY AUTOINCREMENT", postgres: "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY")),
                sync_id \(text)\(dialect.spelling(sqlite: "", postgres: " COLLATE \"C\"")) NOT NULL REFERENCES syncs(id) ON DELETE CASCADE,
                source_id \(text) NOT NULL,
                event \(text) NOT NULL,
                url \(text) NOT NULL,
                secret \(text),
                sync_snapshot \(text) NOT NULL,
                status \(text) NOT NULL DEFAULT \(pending) CHECK (status IN (\(SchemaVocabulary.list(WebhookDelivery.Status.allCases)))),
                tries \(int) NOT NULL DEFAULT 0,
                created_at \(real) NOT NULL,
                next_attempt_at \(real) NOT NULL,
                lease_owner \(text),
                lease_expires_at \(real),
                last_attempt_at \(real),
                response_status \(int),
                last_error \(text),
                delivered_at \(real),
                body \(text)
            )
            """,
            "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = \(pending)",
            "CREATE INDEX webhook_deliveries_by_sync ON webhook_deliveries(sync_id, seq)",
        ]
    }
}

/// A row given as a JSON object: the snapshot of a sync the outbox trigger wrote
/// (`json_object` on SQLite, `row_to_json` on PostgreSQL), read by the same mapping as a
/// table row. Booleans arrive as `0`/`1` from SQLite and as `true`/`false` from PostgreSQL.
struct BadSnapshot: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct JSONStoreRow: StoreRow {
    let object: JSONObject

    private func value(_ column: String) throws -> JSONValue {
        guard let v = object[column] else { throw BadSnapshot("snapshot has no column \(column)") }
        return v
    }

    func string(_ column: String) throws -> String {
        guard let s = try optionalString(column) else { throw BadSnapshot("snapshot column \(column) is null") }
        return s
    }

    func optionalString(_ column: String) throws -> String? {
        switch try value(column) {
        case .null: return nil
        case .string(let s): return s
        default: throw BadSnapshot("snapshot column \(column) is not text")
        }
    }

    func int(_ column: String) throws -> Int {
        switch try value(column) {
        case .number(let n) where n.rounded() == n && abs(n) < 9.0e18: return Int(n)
        case .bool(let b): return b ? 1 : 0
        default: throw BadSnapshot("snapshot column \(column) is not an integer")
        }
    }

    func optionalInt(_ column: String) throws -> Int? {
        if case .null = try value(column) { return nil }
        return try int(column)
    }

    func double(_ column: String) throws -> Double {
        guard let d = try optionalDouble(column) else { throw BadSnapshot("snapshot column \(column) is null") }
        return d
    }

    func optionalDouble(_ column: String) throws -> Double? {
        switch try value(column) {
        case .null: return nil
        case .number(let n): return n
        // row_to_json writes PostgreSQL's non-finite doubles as strings.
        case .string("Infinity"): return .infinity
        case .string("-Infinity"): return -.infinity
        default: throw BadSnapshot("snapshot column \(column) is not a number")
        }
    }

    func bool(_ column: String) throws -> Bool {
        switch try value(column) {
        case .bool(let b): return b
        case .number(let n): return n != 0
        default: throw BadSnapshot("snapshot column \(column) is not a boolean")
        }
    }

    func bytes(_ column: String) throws -> [UInt8] { Array(try string(column).utf8) }

    func has(_ column: String) -> Bool { object[column] != nil }
}
