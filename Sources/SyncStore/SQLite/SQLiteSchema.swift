import GRDB
import SyncCore

/// The SQLite schema, as an ordered list of migrations.
///
/// Why not GRDB's `DatabaseMigrator`: it reads the applied migrations and then
/// runs each one in its own transaction, so two processes starting at once can
/// both decide to run migration 1. Here the whole check-and-apply runs in one
/// `BEGIN IMMEDIATE` transaction keyed on `PRAGMA user_version`, which SQLite's
/// write lock serialises across processes: the second process sees the new
/// version and does nothing.
enum SQLiteSchema {
    static let statusList = SchemaVocabulary.statuses
    static let activeList = SchemaVocabulary.active

    static let migrations: [String] = [
        // 1: sources, syncs, attempts, records, record errors, idempotency keys.
        """
        CREATE TABLE sources (
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL UNIQUE,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            config TEXT NOT NULL,
            schedule_every_seconds REAL,
            priority INTEGER NOT NULL DEFAULT 0,
            retry TEXT NOT NULL,
            rate_limit TEXT,
            min_trigger_interval_seconds REAL NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT '{}',
            last_queued_at REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE syncs (
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL UNIQUE,
            source_id TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
            status TEXT NOT NULL CHECK (status IN (\(statusList))),
            mode TEXT NOT NULL CHECK (mode IN (\(SchemaVocabulary.modes))),
            priority INTEGER NOT NULL DEFAULT 0,
            trigger TEXT NOT NULL CHECK (trigger IN (\(SchemaVocabulary.triggers))),
            attempt INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            failed_attempts INTEGER NOT NULL DEFAULT 0,
            queued_at REAL NOT NULL,
            run_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            next_retry_at REAL,
            heartbeat_at REAL,
            running_since REAL,
            run_seconds REAL NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_token TEXT,
            lease_expires_at REAL,
            checkpoint TEXT,
            error TEXT,
            pages INTEGER NOT NULL DEFAULT 0,
            records_read INTEGER NOT NULL DEFAULT 0,
            records_created INTEGER NOT NULL DEFAULT 0,
            records_updated INTEGER NOT NULL DEFAULT 0,
            records_unchanged INTEGER NOT NULL DEFAULT 0,
            records_deleted INTEGER NOT NULL DEFAULT 0,
            records_failed INTEGER NOT NULL DEFAULT 0,
            bytes_read INTEGER NOT NULL DEFAULT 0,
            checkpoint_at REAL
        );
        -- docs/architecture.md invariant 1: one non-terminal sync per source, enforced here.
        CREATE UNIQUE INDEX syncs_one_active_per_source ON syncs(source_id) WHERE status IN (\(activeList));
        CREATE INDEX syncs_runnable ON syncs(priority DESC, run_at) WHERE status IN (\(SchemaVocabulary.runnable));
        CREATE INDEX syncs_leases ON syncs(lease_expires_at) WHERE status = 'running';
        CREATE INDEX syncs_by_source ON syncs(source_id, id);
        CREATE TABLE sync_attempts (
            sync_id TEXT NOT NULL REFERENCES syncs(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            status TEXT NOT NULL CHECK (status IN (\(statusList))),
            error TEXT,
            node TEXT,
            PRIMARY KEY (sync_id, number)
        ) WITHOUT ROWID;
        -- The record store. Sources and syncs are referenced by their integer seq, not their
        -- 30-character ids: keys and rows stay small on the hottest table (see docs/benchmarks.md).
        -- No foreign key (a per-row check on every upsert); deleteSource removes the rows.
        CREATE TABLE records (
            source_seq INTEGER NOT NULL,
            key TEXT NOT NULL,
            data BLOB NOT NULL,
            hash INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            deleted_at REAL,
            sync_seq INTEGER NOT NULL,
            seen_sync_seq INTEGER NOT NULL,
            PRIMARY KEY (source_seq, key)
        ) WITHOUT ROWID;
        CREATE TABLE record_errors (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sync_id TEXT NOT NULL REFERENCES syncs(id) ON DELETE CASCADE,
            page INTEGER NOT NULL,
            record_key TEXT,
            message TEXT NOT NULL
        );
        CREATE INDEX record_errors_by_sync ON record_errors(sync_id, id);
        CREATE TABLE idempotency_keys (
            source_id TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            sync_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (source_id, key)
        ) WITHOUT ROWID;
        """,
        // 2: the nodes of the cluster (several processes may share one SQLite file).
        """
        CREATE TABLE nodes (
            id TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            workers INTEGER NOT NULL,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        );
        """,
        // 3: finished syncs by time and by source, for statistics and retention.
        """
        CREATE INDEX syncs_finished ON syncs(finished_at) WHERE \(SchemaVocabulary.isTerminal);
        CREATE INDEX syncs_finished_by_source ON syncs(source_id, finished_at, status) WHERE \(SchemaVocabulary.isTerminal);
        """,
        // 4: claims in fair order (priority with aging: the order is an expression, indexed),
        // and paused sources, whose syncs are held out of that index.
        """
        ALTER TABLE sources ADD COLUMN paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1));
        ALTER TABLE syncs ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held IN (0, 1));
        CREATE INDEX syncs_claim_order ON syncs(\(StoreRules.claimOrder)) WHERE status IN (\(SchemaVocabulary.runnable)) AND NOT held;
        DROP INDEX syncs_runnable;
        """,
        // 5: webhooks. A source's `notify` targets; the outbox a trigger fills in the very
        // transaction that changes a sync's status (docs/webhooks.md), whichever path
        // changes it, with the sync as it then stood.
        """
        ALTER TABLE sources ADD COLUMN notify TEXT;
        ALTER TABLE syncs ADD COLUMN notify INTEGER NOT NULL DEFAULT 0 CHECK (notify IN (0, 1));
        \(Webhooks.outboxTable(.sqlite).joined(separator: ";\n"));
        CREATE TRIGGER syncs_notify AFTER UPDATE OF status ON syncs
        WHEN NEW.notify AND NEW.status <> OLD.status AND NEW.status IN (\(SchemaVocabulary.notified))
        BEGIN
            INSERT INTO webhook_deliveries (sync_id, source_id, event, url, secret, sync_snapshot, created_at, next_attempt_at)
            SELECT NEW.id, NEW.source_id, 'sync.' || NEW.status, json_extract(hook.value, '$.url'), json_extract(hook.value, '$.secret'),
                   json_object(\(SyncRows.syncSnapshotColumns.map { "'\($0)', NEW.\($0)" }.joined(separator: ", "))),
                   (julianday('now') - 2440587.5) * 86400.0, (julianday('now') - 2440587.5) * 86400.0
            FROM sources s, json_each(s.notify) AS hook
            WHERE s.id = NEW.source_id AND s.notify IS NOT NULL
              AND EXISTS (SELECT 1 FROM json_each(hook.value, '$.events') AS e WHERE e.value = NEW.status);
        END;
        """,
        // 6: concurrency keys: the claims count the running syncs of a key; rate limits
        // shared by the cluster, and closed by an upstream's Retry-After (docs/queue.md).
        """
        \(RateLimits.schema(.sqlite).joined(separator: ";\n"));
        ALTER TABLE nodes ADD COLUMN draining INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1));
        ALTER TABLE sources ADD COLUMN schedule_cron TEXT;
        ALTER TABLE sources ADD COLUMN next_slot_at REAL;
        ALTER TABLE sources ADD COLUMN skipped_slots INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sources ADD COLUMN concurrency TEXT;
        ALTER TABLE syncs ADD COLUMN concurrency_key TEXT;
        ALTER TABLE syncs ADD COLUMN concurrency_limit INTEGER;
        CREATE INDEX syncs_running_by_key ON syncs(concurrency_key) WHERE status = 'running' AND concurrency_key IS NOT NULL;
        """,
        // 7: the claim walks its own index only (RateLimits.reindex).
        RateLimits.reindex.joined(separator: ";\n"),
        // 8: an operator's resets of a source's state and records (docs/sources.md).
        """
        CREATE TABLE source_resets (
            id TEXT PRIMARY KEY,
            source_id TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
            at REAL NOT NULL,
            state INTEGER NOT NULL CHECK (state IN (0, 1)),
            records INTEGER NOT NULL CHECK (records IN (0, 1)),
            state_before TEXT NOT NULL,
            records_deleted INTEGER NOT NULL,
            trigger TEXT NOT NULL CHECK (trigger IN ('api', 'cli'))
        );
        CREATE INDEX source_resets_by_source ON source_resets(source_id, id);
        """,
        // 9: webhook deliveries share slots by receiver.
        Webhooks.receiversSQLite,
        // 10: the change feed (ChangeFeedSchema).
        ChangeFeedSchema.sqlite,
        // 11: each sync's stretch of the feed, records.changed webhooks (SyncChangesSchema).
        SyncChangesSchema.sqlite,
        // 12: the records view reads every record, with body_text (RecordsViewSchema).
        RecordsViewSchema.sqlite,
        // 13: credentials shared by sources (CredentialSchema).
        CredentialSchema.sqlite,
    ]

    /// Applies the missing migrations in one IMMEDIATE transaction.
    static func migrate(_ pool: DatabasePool) async throws {
        try await pool.write { db in
            let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
            if version > migrations.count { throw SchemaTooNewError(databaseVersion: version, supportedVersion: migrations.count) }
            guard version < migrations.count else { return }
            for (index, sql) in migrations.enumerated() where index >= version {
                try db.execute(sql: sql)
            }
            try db.execute(sql: "PRAGMA user_version = \(migrations.count)")
        }
    }
}
