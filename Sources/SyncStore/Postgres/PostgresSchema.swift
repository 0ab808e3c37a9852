import Logging
import PostgresNIO
import SyncCore

/// The PostgreSQL schema, as an ordered list of migrations (each a list of statements:
/// the extended protocol runs one statement per query).
///
/// Many nodes may start at once: the whole check-and-apply runs in one transaction
/// holding a transaction-scoped advisory lock, so the second node waits, then sees
/// the new version and does nothing. Versions are rows of `tributary_schema` (number and
/// name, ``SchemaHistory``), the counterpart of SQLite's `PRAGMA user_version`. Migrations
/// only ever append.
enum PostgresSchema {
    /// The advisory lock key of migrations ("tributary" folded into 63 bits).
    static let migrationLock: Int64 = 0x7472_6962_7574_6172

    static let statusList = SchemaVocabulary.statuses
    static let activeList = SchemaVocabulary.active

    // Times are seconds since 1970 (double precision), as in SQLite, so both stores share
    // one row mapping. Identifiers and record keys use the "C" collation: they sort by
    // bytes, as in SQLite, whatever the database's locale (keyset pagination relies on it).
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE sources (
                id text COLLATE "C" PRIMARY KEY,
                seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
                name text COLLATE "C" NOT NULL UNIQUE,
                kind text NOT NULL,
                config text NOT NULL,
                schedule_every_seconds double precision,
                priority integer NOT NULL DEFAULT 0,
                retry text NOT NULL,
                rate_limit text,
                min_trigger_interval_seconds double precision NOT NULL DEFAULT 0,
                state text NOT NULL DEFAULT '{}',
                last_queued_at double precision,
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL
            )
            """,
            """
            CREATE TABLE syncs (
                id text COLLATE "C" PRIMARY KEY,
                seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
                source_id text COLLATE "C" NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
                status text NOT NULL CHECK (status IN (\(statusList))),
                mode text NOT NULL CHECK (mode IN (\(SchemaVocabulary.modes))),
                priority integer NOT NULL DEFAULT 0,
                trigger text NOT NULL CHECK (trigger IN (\(SchemaVocabulary.triggers))),
                attempt integer NOT NULL DEFAULT 0,
                max_attempts integer NOT NULL,
                failed_attempts integer NOT NULL DEFAULT 0,
                queued_at double precision NOT NULL,
                run_at double precision NOT NULL,
                started_at double precision,
                finished_at double precision,
                next_retry_at double precision,
                heartbeat_at double precision,
                running_since double precision,
                run_seconds double precision NOT NULL DEFAULT 0,
                cancel_requested boolean NOT NULL DEFAULT false,
                lease_owner text,
                lease_token text,
                lease_expires_at double precision,
                checkpoint text,
                error text,
                pages bigint NOT NULL DEFAULT 0,
                records_read bigint NOT NULL DEFAULT 0,
                records_created bigint NOT NULL DEFAULT 0,
                records_updated bigint NOT NULL DEFAULT 0,
                records_unchanged bigint NOT NULL DEFAULT 0,
                records_deleted bigint NOT NULL DEFAULT 0,
                records_failed bigint NOT NULL DEFAULT 0,
                bytes_read bigint NOT NULL DEFAULT 0,
                checkpoint_at double precision
            )
            """,
            // docs/architecture.md invariant 1: one non-terminal sync per source, enforced here.
            "CREATE UNIQUE INDEX syncs_one_active_per_source ON syncs(source_id) WHERE status IN (\(activeList))",
            "CREATE INDEX syncs_runnable ON syncs(priority DESC, run_at) WHERE status IN (\(SchemaVocabulary.runnable))",
            "CREATE INDEX syncs_leases ON syncs(lease_expires_at) WHERE status = 'running'",
            "CREATE INDEX syncs_by_source ON syncs(source_id, id)",
            """
            CREATE TABLE sync_attempts (
                sync_id text COLLATE "C" NOT NULL REFERENCES syncs(id) ON DELETE CASCADE,
                number integer NOT NULL,
                started_at double precision NOT NULL,
                finished_at double precision,
                status text NOT NULL CHECK (status IN (\(statusList))),
                error text,
                node text,
                PRIMARY KEY (sync_id, number)
            )
            """,
            // The record store, keyed by the integer seq of its source (see SQLiteSchema).
            """
            CREATE TABLE records (
                source_seq bigint NOT NULL,
                key text COLLATE "C" NOT NULL,
                data bytea NOT NULL,
                hash bigint NOT NULL,
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL,
                deleted_at double precision,
                sync_seq bigint NOT NULL,
                seen_sync_seq bigint NOT NULL,
                PRIMARY KEY (source_seq, key)
            )
            """,
            """
            CREATE TABLE record_errors (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                sync_id text COLLATE "C" NOT NULL REFERENCES syncs(id) ON DELETE CASCADE,
                page integer NOT NULL,
                record_key text,
                message text NOT NULL
            )
            """,
            "CREATE INDEX record_errors_by_sync ON record_errors(sync_id, id)",
            """
            CREATE TABLE idempotency_keys (
                source_id text COLLATE "C" NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
                key text NOT NULL,
                fingerprint text NOT NULL,
                sync_id text NOT NULL,
                created_at double precision NOT NULL,
                PRIMARY KEY (source_id, key)
            )
            """,
            """
            CREATE TABLE nodes (
                id text COLLATE "C" PRIMARY KEY,
                role text NOT NULL,
                workers integer NOT NULL,
                started_at double precision NOT NULL,
                heartbeat_at double precision NOT NULL
            )
            """,
        ],
        // 2: the nodes of the cluster: on PostgreSQL they came with migration 1.
        [],
        // 3: finished syncs by time and by source, for statistics and retention.
        [
            "CREATE INDEX syncs_finished ON syncs(finished_at) WHERE \(SchemaVocabulary.isTerminal)",
            "CREATE INDEX syncs_finished_by_source ON syncs(source_id, finished_at, status) WHERE \(SchemaVocabulary.isTerminal)",
        ],
        // 4: claims in fair order (priority with aging: the order is an expression, indexed),
        // and paused sources, whose syncs are held out of that index.
        [
            "ALTER TABLE sources ADD COLUMN paused boolean NOT NULL DEFAULT false",
            "ALTER TABLE syncs ADD COLUMN held boolean NOT NULL DEFAULT false",
            "CREATE INDEX syncs_claim_order ON syncs(\(StoreRules.claimOrder)) WHERE status IN (\(SchemaVocabulary.runnable)) AND NOT held",
            "DROP INDEX syncs_runnable",
        ],
        // 5: webhooks. A source's `notify` targets; the outbox a trigger fills in the very
        // transaction that changes a sync's status (docs/webhooks.md), whichever path
        // changes it, with the sync as it then stood.
        [
            "ALTER TABLE sources ADD COLUMN notify text",
            "ALTER TABLE syncs ADD COLUMN notify boolean NOT NULL DEFAULT false",
        ] + Webhooks.outboxTable(.postgres) + [
            """
            CREATE FUNCTION tributary_syncs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO webhook_deliveries (sync_id, source_id, event, url, secret, sync_snapshot, created_at, next_attempt_at)
                SELECT NEW.id, NEW.source_id, 'sync.' || NEW.status, hook->>'url', hook->>'secret', row_to_json(NEW)::text, t.now, t.now
                FROM sources s CROSS JOIN LATERAL jsonb_array_elements(s.notify::jsonb) AS hook
                     CROSS JOIN (SELECT extract(epoch FROM clock_timestamp())::float8 AS now) AS t
                WHERE s.id = NEW.source_id AND s.notify IS NOT NULL AND hook->'events' ? NEW.status;
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER syncs_notify AFTER UPDATE OF status ON syncs FOR EACH ROW
            WHEN (NEW.notify AND NEW.status <> OLD.status AND NEW.status IN (\(SchemaVocabulary.notified)))
            EXECUTE FUNCTION tributary_syncs_notify()
            """,
        ],
        // 6: concurrency keys. The claim statement passes over a sync whose key is full; two
        // nodes claiming at once could both see a free slot, so a trigger takes a lock on the
        // key, counts again, and skips the row (the claim does not take it) when it is full.
        RateLimits.schema(.postgres) + [
            "ALTER TABLE nodes ADD COLUMN draining boolean NOT NULL DEFAULT false",
            "ALTER TABLE sources ADD COLUMN schedule_cron text",
            "ALTER TABLE sources ADD COLUMN next_slot_at double precision",
            "ALTER TABLE sources ADD COLUMN skipped_slots integer NOT NULL DEFAULT 0",
            "ALTER TABLE sources ADD COLUMN concurrency text",
            "ALTER TABLE syncs ADD COLUMN concurrency_key text",
            "ALTER TABLE syncs ADD COLUMN concurrency_limit integer",
            "CREATE INDEX syncs_running_by_key ON syncs(concurrency_key) WHERE status = 'running' AND concurrency_key IS NOT NULL",
            """
            CREATE FUNCTION tributary_syncs_concurrency() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock(\(concurrencyLockSpace), hashtext(NEW.concurrency_key));
                IF (SELECT count(*) FROM syncs WHERE concurrency_key = NEW.concurrency_key AND status = 'running' AND id <> NEW.id)
                   >= NEW.concurrency_limit THEN
                    RETURN NULL;
                END IF;
                RETURN NEW;
            END
            $$
            """,
            """
            CREATE TRIGGER syncs_concurrency BEFORE UPDATE OF status ON syncs FOR EACH ROW
            WHEN (NEW.status = 'running' AND OLD.status <> 'running' AND NEW.concurrency_key IS NOT NULL)
            EXECUTE FUNCTION tributary_syncs_concurrency()
            """,
        ],
        // 7: the claim walks its own index only (RateLimits.reindex).
        RateLimits.reindex,
        // 8: an operator's resets of a source's state and records (docs/sources.md).
        [
            """
            CREATE TABLE source_resets (
                id text COLLATE "C" PRIMARY KEY,
                source_id text COLLATE "C" NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
                at double precision NOT NULL,
                state boolean NOT NULL,
                records boolean NOT NULL,
                state_before text NOT NULL,
                records_deleted bigint NOT NULL,
                trigger text NOT NULL CHECK (trigger IN ('api', 'cli'))
            )
            """,
            "CREATE INDEX source_resets_by_source ON source_resets(source_id, id)",
        ],
        // 9: webhook deliveries share slots by receiver.
        Webhooks.receiversPostgres,
        // 10: the change feed (ChangeFeedSchema).
        ChangeFeedSchema.postgres,
        // 11: each sync's stretch of the feed, records.changed webhooks (SyncChangesSchema).
        SyncChangesSchema.postgres,
        // 12: the records view reads every record, with body_text (RecordsViewSchema).
        RecordsViewSchema.postgres,
        // 13: credentials shared by sources (CredentialSchema).
        CredentialSchema.postgres,
    ]

    /// The first key of the advisory locks on concurrency keys (the second is the key's hash).
    static let concurrencyLockSpace: Int32 = 0x7472_6962  // "trib"

    /// Applies the missing migrations under the advisory lock, in one transaction.
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.run("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
        try await connection.run(
            "CREATE TABLE IF NOT EXISTS tributary_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            logger: logger)
        try await connection.run("ALTER TABLE tributary_schema ADD COLUMN IF NOT EXISTS name text", logger: logger)
        try await renumber(connection, logger: logger)
        let version = try await connection.one("SELECT COALESCE(MAX(version), 0)::int8 AS v FROM tributary_schema", logger: logger)
            .map { try $0.int("v") } ?? 0
        if version > migrations.count { throw SchemaTooNewError(databaseVersion: version, supportedVersion: migrations.count) }
        guard version < migrations.count else { return }
        for (index, statements) in migrations.enumerated() where index >= version {
            for sql in statements { try await connection.run(PostgresQuery(unsafeSQL: sql), logger: logger) }
            let name = SchemaHistory.names[index]
            try await connection.run("INSERT INTO tributary_schema (version, name) VALUES (\(index + 1), \(name))", logger: logger)
        }
    }

    /// Versions written before migrations had names were numbered without "nodes" (2), which
    /// PostgreSQL got with "base": each of those from 2 on is one higher now, and 2 is filled
    /// in, so both stores number every migration alike. Done once (the rows then have names).
    static func renumber(_ connection: PostgresConnection, logger: Logger) async throws {
        let oldNumbering = 7
        // The old numbering ran to 7; an unnamed row past it is not of that numbering (it is
        // left for the version check to refuse).
        let unnamed = try await connection.one(
            "SELECT COUNT(*)::int8 AS n FROM tributary_schema WHERE name IS NULL AND version <= \(oldNumbering)", logger: logger)
        guard let count = try unnamed?.int("n"), count > 0 else { return }
        try await connection.run(
            "UPDATE tributary_schema SET version = -(version + 1) WHERE name IS NULL AND version BETWEEN 2 AND \(oldNumbering)", logger: logger)
        try await connection.run("UPDATE tributary_schema SET version = -version WHERE version < 0", logger: logger)
        try await connection.run(
            "INSERT INTO tributary_schema (version) SELECT 2 WHERE EXISTS (SELECT 1 FROM tributary_schema WHERE version = 1) ON CONFLICT DO NOTHING",
            logger: logger)
        for (index, name) in SchemaHistory.names.enumerated() {
            try await connection.run(
                "UPDATE tributary_schema SET name = \(name) WHERE version = \(index + 1) AND name IS NULL AND version <= \(oldNumbering + 1)",
                logger: logger)
        }
    }
}
