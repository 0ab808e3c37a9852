import Foundation
import SyncCore

extension DatabaseStore {
    /// Webhooks saved without their receiver (by a version before receivers, or by an older
    /// node during a rolling upgrade) get it, and so do their pending deliveries, whose
    /// receiver the outbox trigger could only take from the URL: without it, every path of one
    /// origin counted as a receiver of its own. Run by every ``migrate()`` (each node's start);
    /// it writes only what differs, and only if nobody changed it meanwhile.
    func fillWebhookReceivers() async throws {
        for row in try await driver.read(["SELECT id, notify FROM sources WHERE notify IS NOT NULL"])[0] {
            let id = try row.string("id"), text = try row.string("notify")
            // A stored list that does not read is left as it is (reading the source throws).
            guard let targets = try? RowCoding.decode([WebhookTarget].self, text, column: "notify"),
                  let stored = RowCoding.notify(targets), stored != text else { continue }
            _ = try await driver.execute("UPDATE sources SET notify = \(stored) WHERE id = \(id) AND notify = \(text)")
        }
        for row in try await driver.read(["SELECT DISTINCT url FROM webhook_deliveries WHERE status = \(raw: Webhooks.pending)"])[0] {
            let url = try row.string("url"), receiver = WebhookTarget.receiver(of: url)
            _ = try await driver.execute("""
                UPDATE webhook_deliveries SET receiver = \(receiver)
                WHERE url = \(url) AND status = \(raw: Webhooks.pending) AND (receiver IS NULL OR receiver <> \(receiver))
                """)
        }
    }
}

extension DatabaseStore: WebhookOutbox, DeliveryLog {
    public func claimDeliveries(owner: String, leaseSeconds: Double, now: Date, limit: Int,
                                perReceiver: Int, excludingReceivers: [String]) async throws -> [WebhookDelivery] {
        let t = now.timeIntervalSince1970
        let excluded: StoreSQL = excludingReceivers.isEmpty ? "" : "AND NOT (COALESCE(receiver, url) \(in: excludingReceivers))"
        // One statement: on PostgreSQL the due rows another node is claiming are skipped, and
        // a row claimed and committed by another node carries a live lease, so no two nodes
        // try one delivery at once. A node that dies mid-try leaves a lease that expires.
        // At most `perReceiver` of one receiver (an origin: URLs that differ in path or query
        // are one receiver), and none of the receivers the caller is busy with: one receiver's
        // backlog (or its hung connections) cannot take every slot.
        let claimed = try await driver.execute("""
            UPDATE webhook_deliveries SET lease_owner = \(owner), lease_expires_at = \(t + leaseSeconds),
                tries = tries + 1, last_attempt_at = \(t)
            WHERE seq IN (
                SELECT seq FROM webhook_deliveries
                WHERE seq IN (
                    SELECT seq FROM (
                        SELECT seq, ROW_NUMBER() OVER (PARTITION BY COALESCE(receiver, url) ORDER BY next_attempt_at, seq) AS place
                        FROM webhook_deliveries
                        WHERE status = \(raw: Webhooks.pending) AND next_attempt_at <= \(t)
                          AND (lease_expires_at IS NULL OR lease_expires_at < \(t)) \(sql: excluded)
                    ) AS due WHERE place <= \(perReceiver))
                ORDER BY next_attempt_at LIMIT \(limit) \(sqlite: "", postgres: "FOR UPDATE SKIP LOCKED"))
            RETURNING *
            """)[0]
        guard !claimed.isEmpty else { return [] }
        // A signing secret that does not open (damaged, or sealed with a key this node was not
        // given) fails its delivery with the reason, instead of holding up the outbox.
        var deliveries: [WebhookDelivery] = []
        var unopened: [Int64] = []
        for row in claimed {
            var delivery = try Self.delivery(row, withSnapshot: true)
            if let sealed = delivery.secret {
                guard let secret = try? keyring.open(sealed, context: SecretKeyring.context(of: delivery.sourceID)) else {
                    unopened.append(delivery.seq)
                    continue
                }
                delivery.secret = secret
            }
            deliveries.append(delivery)
        }
        for seq in unopened {
            _ = try await driver.execute("""
                UPDATE webhook_deliveries SET status = \(WebhookDelivery.Status.failed.rawValue), lease_owner = NULL, lease_expires_at = NULL,
                    last_error = 'its signing secret does not open (damaged, or sealed with a key this node was not given)'
                WHERE seq = \(seq) AND lease_owner = \(owner)
                """)
        }
        guard !deliveries.isEmpty else { return [] }
        let syncIDs = Array(Set(deliveries.map(\.syncID))), sourceIDs = Array(Set(deliveries.map(\.sourceID)))
        let rows = try await driver.read([
            "SELECT id, name FROM sources WHERE id \(in: sourceIDs)",
            "SELECT * FROM sync_attempts WHERE sync_id \(in: syncIDs) ORDER BY sync_id, number",
        ])
        let names = Dictionary(try rows[0].map { (try $0.string("id"), try $0.string("name")) }, uniquingKeysWith: { a, _ in a })
        var attempts: [String: [SyncAttempt]] = [:]
        for row in rows[1] { attempts[try row.string("sync_id"), default: []].append(try RowCoding.attempt(row)) }
        for i in deliveries.indices {
            deliveries[i].sourceName = names[deliveries[i].sourceID]
            // The attempts up to the one the snapshot was taken in: an attempt's row does not
            // change once it has ended, so these are the attempts as they then stood.
            if let sync = deliveries[i].sync {
                deliveries[i].sync?.attempts = (attempts[sync.id] ?? []).filter { $0.number <= sync.attempt }
            }
        }
        return deliveries.sorted { $0.seq < $1.seq }
    }

    public func recordTry(_ delivery: WebhookDelivery, owner: String, body: [UInt8], result: WebhookTryResult, now: Date) async throws -> Bool {
        let t = now.timeIntervalSince1970
        var status = WebhookDelivery.Status.pending, next: Double? = nil, code: Int? = nil, error: String? = nil, delivered: Double? = nil
        switch result {
        case .delivered(let c): status = .delivered; code = c; delivered = t
        case .retry(let at, let c, let e): next = Timestamp.clamped(at).timeIntervalSince1970; code = c; error = e
        case .failed(let c, let e): status = .failed; code = c; error = e
        }
        // Fenced by the lease: a node whose lease expired mid-try (and whose delivery another
        // node has taken) writes nothing.
        let rows = try await driver.execute("""
            UPDATE webhook_deliveries SET status = \(status.rawValue), next_attempt_at = COALESCE(\(next), next_attempt_at),
                response_status = \(code), last_error = \(error), delivered_at = \(delivered),
                body = COALESCE(body, \(String(decoding: body, as: UTF8.self))), lease_owner = NULL, lease_expires_at = NULL
            WHERE seq = \(delivery.seq) AND lease_owner = \(owner) AND status = \(raw: Webhooks.pending)
            RETURNING seq
            """)
        return rows.first(0) != nil
    }

    public func deliveries(syncID: String) async throws -> [WebhookDelivery] {
        try await driver.read(["SELECT * FROM webhook_deliveries WHERE sync_id = \(syncID) ORDER BY seq"])[0]
            .map { try Self.delivery($0, withSnapshot: false) }
    }

    static func delivery(_ row: some StoreRow, withSnapshot: Bool) throws -> WebhookDelivery {
        var sync: Sync?
        if withSnapshot, let object = try RowCoding.decode(JSONValue.self, try row.string("sync_snapshot"), column: "sync_snapshot")?.objectValue {
            sync = try RowCoding.sync(JSONStoreRow(object: object), attempts: [])
        }
        let status = try row.string("status")
        return WebhookDelivery(
            seq: Int64(try row.int("seq")), syncID: try row.string("sync_id"), sourceID: try row.string("source_id"),
            sourceName: nil, event: try row.string("event"), url: try row.string("url"),
            receiver: try row.optionalString("receiver") ?? row.string("url"), secret: try row.optionalString("secret"),
            sync: sync, status: WebhookDelivery.Status(rawValue: status) ?? .failed, tries: try row.int("tries"),
            createdAt: Date(timeIntervalSince1970: try row.double("created_at")),
            nextAttemptAt: status == WebhookDelivery.Status.pending.rawValue ? RowCoding.date(try row.optionalDouble("next_attempt_at")) : nil,
            lastAttemptAt: RowCoding.date(try row.optionalDouble("last_attempt_at")),
            responseStatus: try row.optionalInt("response_status"),
            lastError: try row.optionalString("last_error"),
            deliveredAt: RowCoding.date(try row.optionalDouble("delivered_at")),
            body: try row.optionalString("body").map { Array($0.utf8) })
    }
}
