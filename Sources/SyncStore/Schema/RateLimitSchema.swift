import SyncCore

/// Request budgets shared by the cluster (docs/queue.md, "Rate limits"): one row per key in
/// `rate_limits`, a GCRA (`tat`: the theoretical arrival time of the next request) and the
/// time an upstream asked to be left alone until (`closed_until`).
enum RateLimits {
    static func schema(_ dialect: SQLDialect) -> [String] {
        let text = dialect.spelling(sqlite: "TEXT", postgres: "text"), real = dialect.spelling(sqlite: "REAL", postgres: "double precision")
        return [
            "CREATE TABLE rate_limits (key \(text) PRIMARY KEY, tat \(real) NOT NULL DEFAULT 0, closed_until \(real) NOT NULL DEFAULT 0)",
            "ALTER TABLE sources ADD COLUMN rate_key \(text)",
            "UPDATE sources SET rate_key = 'source:' || id",
            "ALTER TABLE syncs ADD COLUMN rate_key \(text)",
            "UPDATE syncs SET rate_key = 'source:' || source_id",
            "CREATE INDEX syncs_runnable_by_rate_key ON syncs(rate_key) WHERE status IN (\(SchemaVocabulary.runnable))",
            // The next time a sync becomes due (an idle worker's wait): a seek, not a scan of the queue.
            "CREATE INDEX syncs_next_run ON syncs(run_at) WHERE status IN (\(SchemaVocabulary.runnable)) AND NOT held",
        ]
    }

    /// The two indexes above, out of the claim's reach. Their predicates were implied by the
    /// claim's condition, so the planner could scan either for it; PostgreSQL did, whenever its
    /// statistics said the queue was nearly empty (a queue filled since the last ANALYZE): a
    /// bitmap scan of `syncs_next_run` and a sort of every due sync on every claim (9 ms instead
    /// of 1.6 ms on 6,000; the queue drained at 0.76×). Each now states a condition the claim
    /// does not (`run_at >= 0` in ``nextRunCondition``; a sync's rate key is never null), leaving the claim one
    /// index to walk, `syncs_claim_order`, in its order.
    static let reindex = [
        "DROP INDEX syncs_next_run",
        "CREATE INDEX syncs_next_run ON syncs(run_at) WHERE \(nextRunCondition)",
        "DROP INDEX syncs_runnable_by_rate_key",
        "CREATE INDEX syncs_runnable_by_rate_key ON syncs(rate_key) WHERE status IN (\(SchemaVocabulary.runnable)) AND rate_key IS NOT NULL",
    ]

    /// The predicate of `syncs_next_run`, stated by every read of that index
    /// (``DatabaseStore/nextRunAt()``, ``StoreRules/someDue(at:)``). Its `run_at >= 0` is
    /// always true (times are Unix seconds) and what the claim does not state, so that only
    /// those reads can use the index.
    static let nextRunCondition = "status IN (\(SchemaVocabulary.runnable)) AND NOT held AND run_at >= 0"
}
