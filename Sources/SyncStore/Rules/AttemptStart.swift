/// What claiming a sync writes, for both drivers: the sync's `SET` list (running, the next
/// attempt, the lease, the first start kept) and the attempt's row, over each driver's own
/// spellings of the values. The choice of which syncs is the claim order (``StoreRules``).
enum AttemptStart {
    static func syncColumns(owner: String, token: String, expiresAt: String, now: String) -> String {
        """
        status = 'running', attempt = attempt + 1, lease_owner = \(owner), lease_token = \(token),
            lease_expires_at = \(expiresAt), heartbeat_at = \(now), started_at = COALESCE(started_at, \(now)), running_since = \(now),
            next_retry_at = NULL
        """
    }

    /// The attempt's row: `INSERT INTO sync_attempts (…)` followed by this column list.
    static let attemptColumns = "(sync_id, number, started_at, status, node)"
}
