/// The names of the schema's migrations, in order: migration n has the same number and the
/// same name on both stores (docs/architecture.md, "Migrations"). A store on which a
/// migration has nothing to do lists it all the same, as a migration of no statements.
enum SchemaHistory {
    static let names = [
        "base",             // 1: sources, syncs, attempts, records, record errors, idempotency keys
        "nodes",            // 2: the nodes of the cluster (in "base" on PostgreSQL)
        "history indexes",  // 3: finished syncs by time and by source
        "fair claims",      // 4: priority with aging, paused sources held out
        "webhooks",         // 5: notify targets and the outbox
        "budgets",          // 6: concurrency keys and rate limits
        "claim index",      // 7: the claim walks its own index only
        "resets",           // 8: an operator's resets of a source
        "webhook receivers", // 9: deliveries share slots by receiver (the URL's origin)
        "change feed",      // 10: per-source change numbers, feed heads, the records view
        "sync changes",     // 11: each sync's stretch of the feed, records.changed webhooks
        "records view",     // 12: the records view reads every record; body_text
        "credentials",      // 13: credentials shared by sources
    ]
}
