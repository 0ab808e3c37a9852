import Foundation
import SyncCore

extension DatabaseStore: CredentialVault {
    public func createCredential(_ credential: Credential) async throws -> Credential {
        let c = RowCoding.storedForm(credential)
        let insert = StoreWrite("""
            INSERT INTO credentials (id, name, type, fields, secrets, status, version, created_at, updated_at)
            VALUES (\(c.id), \(c.name), \(c.type.rawValue), \(RowCoding.json(c.fields)), \(RowCoding.secrets(c.secrets, keyring, id: c.id)),
                \(c.status.rawValue), \(c.version), \(c.createdAt.timeIntervalSince1970), \(c.updatedAt.timeIntervalSince1970))
            """, onUniqueViolation: .fail(.credentialNameTaken(c.name)))
        let keyring = keyring
        return try await driver.transact(StoreTransaction { _ in
            StoreDecision(writes: [insert], then: ["SELECT * FROM credentials WHERE id = \(c.id)"]) { _, then in
                guard let row = then.first(0) else { throw SyncStoreError.notFound("credential \(c.id)") }
                return try RowCoding.credential(row, keyring)
            }
        })
    }

    public func credential(idOrName: String) async throws -> Credential? {
        let rows = try await driver.read([
            "SELECT * FROM credentials WHERE id = \(idOrName) OR name = \(idOrName) ORDER BY (id = \(idOrName)) DESC LIMIT 1",
        ])
        return try rows.first(0).map { try RowCoding.credential($0, keyring) }
    }

    public func credentials(limit: Int, after: String?) async throws -> [Credential] {
        let rows = try await driver.read(["SELECT * FROM credentials WHERE id > \(after ?? "") ORDER BY id LIMIT \(limit)"])
        return try rows[0].map { try RowCoding.credential($0, keyring) }
    }

    public func updateCredential(_ credential: Credential, secretsChanged: Bool, now: Date) async throws -> Credential {
        let c = RowCoding.storedForm(credential)
        let t = now.timeIntervalSince1970
        let reauthorised: StoreSQL = secretsChanged
            ? """
              , status = 'active', status_reason = NULL, access_token = NULL, token_expires_at = NULL,
                version = version + 1, refresh_owner = NULL, refresh_until = NULL
              """
            : ""
        let update = StoreWrite("""
            UPDATE credentials SET name = \(c.name), fields = \(RowCoding.json(c.fields)), secrets = \(RowCoding.secrets(c.secrets, keyring, id: c.id)),
                updated_at = \(t) \(sql: reauthorised)
            WHERE id = \(c.id) RETURNING id
            """, requireRow: .notFound("credential \(c.id)"), onUniqueViolation: .fail(.credentialNameTaken(c.name)))
        let keyring = keyring
        return try await driver.transact(StoreTransaction { _ in
            StoreDecision(writes: [update], then: ["SELECT * FROM credentials WHERE id = \(c.id)"]) { _, then in
                guard let row = then.first(0) else { throw SyncStoreError.notFound("credential \(c.id)") }
                return try RowCoding.credential(row, keyring)
            }
        })
    }

    public func deleteCredential(id: String) async throws {
        try await driver.transact(StoreTransaction(facts: [
            "SELECT id FROM credentials WHERE id = \(id) \(sql: .forUpdate)",
            "SELECT min(id) AS first, count(*) AS n FROM sources WHERE credential_id = \(id)",
        ]) { facts in
            guard facts.first(0) != nil else { throw SyncStoreError.notFound("credential \(id)") }
            let users = try facts.first(1)?.int("n") ?? 0
            if users > 0 { throw SyncStoreError.credentialInUse(sourceID: try facts.first(1)?.optionalString("first") ?? "", sources: users) }
            return StoreDecision(writes: [StoreWrite("DELETE FROM credentials WHERE id = \(id)")]) { _, _ in () }
        })
    }

    public func credentialUsage(ids: [String]) async throws -> [String: Int] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await driver.read([
            "SELECT credential_id, count(*) AS n FROM sources WHERE credential_id \(in: ids) GROUP BY credential_id",
        ])
        var out: [String: Int] = [:]
        for id in ids { out[id] = 0 }
        for row in rows[0] { out[try row.string("credential_id")] = try row.int("n") }
        return out
    }

    public func credentialSources(ids: [String], limit: Int) async throws -> [String: (first: [(id: String, name: String)], total: Int)] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await driver.read([
            "SELECT id, name, credential_id FROM sources WHERE credential_id \(in: ids) ORDER BY name",
        ])
        var out: [String: (first: [(id: String, name: String)], total: Int)] = [:]
        for row in rows[0] {
            let credential = try row.string("credential_id")
            var entry = out[credential] ?? ([], 0)
            entry.total += 1
            if entry.first.count < limit { entry.first.append((try row.string("id"), try row.string("name"))) }
            out[credential] = entry
        }
        return out
    }

    public func claimRefresh(credentialID: String, seenVersion: Int, owner: String, leaseSeconds: Double, now: Date) async throws -> RefreshClaim {
        let t = now.timeIntervalSince1970
        let keyring = keyring
        return try await driver.transact(StoreTransaction(facts: [
            "SELECT * FROM credentials WHERE id = \(credentialID) \(sql: .forUpdate)",
        ]) { facts in
            guard let row = facts.first(0) else { return .answer(.missing) }
            let current = try RowCoding.credential(row, keyring)
            if current.status != .active || current.version != seenVersion { return .answer(.current(current)) }
            if let until = try row.optionalDouble("refresh_until"), until > t, try row.optionalString("refresh_owner") != owner {
                return .answer(.busy(until: Date(timeIntervalSince1970: until)))
            }
            return StoreDecision(writes: [
                StoreWrite("""
                    UPDATE credentials SET refresh_owner = \(owner), refresh_until = \(t + leaseSeconds) WHERE id = \(credentialID)
                    """),
            ]) { _, _ in .claimed(current) }
        })
    }

    public func extendRefresh(credentialID: String, owner: String, until: Date) async throws -> Bool {
        try await driver.transact(StoreTransaction { _ in
            StoreDecision(writes: [
                StoreWrite("""
                    UPDATE credentials SET refresh_until = \(until.timeIntervalSince1970)
                    WHERE id = \(credentialID) AND refresh_owner = \(owner) RETURNING id
                    """),
            ]) { written, _ in !written[0].isEmpty }
        })
    }

    public func completeRefresh(credentialID: String, owner: String, token: IssuedToken, now: Date) async throws -> Credential? {
        let t = now.timeIntervalSince1970
        let keyring = keyring
        return try await driver.transact(StoreTransaction(facts: [
            "SELECT * FROM credentials WHERE id = \(credentialID) \(sql: .forUpdate)",
        ]) { facts in
            guard let row = facts.first(0), try row.optionalString("refresh_owner") == owner else { return .answer(nil) }
            var secrets = RowCoding.stored(try RowCoding.credential(row, keyring)).secrets
            if let rotated = token.refreshToken { secrets["refresh_token"] = rotated }
            return StoreDecision(writes: [
                StoreWrite("""
                    UPDATE credentials SET access_token = \(keyring.seal(token.accessToken, context: "credential:\(credentialID):access_token")),
                        token_expires_at = \(token.expiresAt?.timeIntervalSince1970), secrets = \(RowCoding.secrets(secrets, keyring, id: credentialID)),
                        last_refresh_at = \(t), refresh_count = refresh_count + 1, version = version + 1,
                        refresh_owner = NULL, refresh_until = NULL, status = 'active', status_reason = NULL
                    WHERE id = \(credentialID)
                    """),
            ], then: ["SELECT * FROM credentials WHERE id = \(credentialID)"]) { _, then in
                try then.first(0).map { try RowCoding.credential($0, keyring) }
            }
        })
    }

    public func abandonRefresh(credentialID: String, owner: String, needsReauth: String?, now: Date) async throws {
        let reauth: StoreSQL = needsReauth.map {
            ", status = 'needs_reauth', status_reason = \($0), access_token = NULL, token_expires_at = NULL, version = version + 1"
        } ?? ""
        _ = try await driver.transact(StoreTransaction { _ in
            StoreDecision(writes: [
                StoreWrite("""
                    UPDATE credentials SET refresh_owner = NULL, refresh_until = NULL, updated_at = \(now.timeIntervalSince1970) \(sql: reauth)
                    WHERE id = \(credentialID) AND refresh_owner = \(owner)
                    """),
            ]) { _, _ in () }
        })
    }
}

extension DatabaseStore {
    /// The ids of the keys that sealed the stored secrets (empty: none is sealed).
    public func sealedKeyIDs() async throws -> Set<String> {
        let rows = try await driver.read([
            "SELECT DISTINCT substr(secrets, 1, 24) AS a, substr(access_token, 1, 24) AS b FROM credentials",
            "SELECT config AS a, notify AS b FROM sources WHERE config LIKE '%enc:v1:%' OR notify LIKE '%enc:v1:%'",
            "SELECT DISTINCT substr(secret, 1, 24) AS a, NULL AS b FROM webhook_deliveries WHERE secret LIKE 'enc:v1:%'",
        ])
        var ids = Set<String>()
        for set in rows.sets {
            for row in set {
                for column in ["a", "b"] {
                    if let text = try row.optionalString(column) { ids.formUnion(SecretKeyring.keyIDs(in: text)) }
                }
            }
        }
        return ids
    }

    /// Seals every stored secret again under the keyring's first key (or stores it in the
    /// clear when the keyring is empty), `batch` rows per transaction, while the service
    /// runs: credentials, sources' own secrets and webhook deliveries' secrets. A row
    /// changed meanwhile (a refresh, a PATCH) is left as it is: its writer sealed it with its
    /// own first key. Returns how many rows were sealed again.
    public func resealSecrets(batch: Int = 100) async throws -> Int {
        let keyring = keyring
        let current: Set<String> = Set(keyring.sealingKeyID.map { [$0] } ?? [])
        func stale(_ texts: [String?]) -> Bool {
            texts.compactMap { $0 }.contains { !SecretKeyring.keyIDs(in: $0).isSubset(of: current) }
        }
        let isNot: StoreSQL = "\(sqlite: "IS", postgres: "IS NOT DISTINCT FROM")"
        var count = try await resealBatches("SELECT id AS k, secrets, access_token FROM credentials", key: "id", batch: batch) { row in
            let secrets = try row.string("secrets")
            let token = try row.optionalString("access_token")
            // A credential's columns are sealed whole: a plain one needs sealing when a key is given.
            let plain = keyring.isSealing && (SecretKeyring.keyID(of: secrets) == nil || token.map { SecretKeyring.keyID(of: $0) == nil } == true)
            guard plain || stale([secrets, token]) else { return nil }
            let id = try row.string("k")
            let secretsContext = "credential:\(id):secrets", tokenContext = "credential:\(id):access_token"
            return StoreWrite("""
                UPDATE credentials SET secrets = \(keyring.seal(try keyring.open(secrets, context: secretsContext), context: secretsContext)),
                    access_token = \(try token.map { keyring.seal(try keyring.open($0, context: tokenContext), context: tokenContext) })
                WHERE id = \(id) AND secrets = \(secrets) AND access_token \(sql: isNot) \(token) RETURNING id
                """)
        }
        count += try await resealBatches("SELECT *, id AS k FROM sources", key: "id", batch: batch) { row in
            let config = try row.string("config"), notify = try row.optionalString("notify")
            let stored = try RowCoding.source(row)
            let resealed = keyring.sealSecrets(of: try keyring.openSecrets(of: stored))
            let newConfig = RowCoding.json(resealed.config), newNotify = RowCoding.notify(resealed.notify)
            guard stale([config, notify]) || SecretKeyring.keyIDs(in: newConfig + (newNotify ?? "")) != SecretKeyring.keyIDs(in: config + (notify ?? "")) else {
                return nil
            }
            return StoreWrite("""
                UPDATE sources SET config = \(newConfig), notify = \(newNotify)
                WHERE id = \(stored.id) AND config = \(config) AND notify \(sql: isNot) \(notify) RETURNING id
                """)
        }
        count += try await resealBatches("SELECT seq AS k, source_id, secret FROM webhook_deliveries WHERE secret IS NOT NULL", key: "seq", integerKey: true, batch: batch) { row in
            let secret = try row.string("secret")
            let context = SecretKeyring.context(of: try row.string("source_id"))
            guard stale([secret]) || (keyring.isSealing && SecretKeyring.keyID(of: secret) == nil) else { return nil }
            return StoreWrite("""
                UPDATE webhook_deliveries SET secret = \(keyring.seal(try keyring.open(secret, context: context), context: context))
                WHERE seq = \(try row.int("k")) AND secret = \(secret) RETURNING seq
                """)
        }
        return count
    }

    /// Walks `select`'s rows (which name their key `k`: text, or an integer with
    /// `integerKey`) in key order, `batch` at a time, writing what `reseal` asks for each
    /// batch in one transaction; returns how many rows were written.
    private func resealBatches(_ select: String, key: String, integerKey: Bool = false, batch: Int,
                               _ reseal: (any StoreRow) throws -> StoreWrite?) async throws -> Int {
        var count = 0
        var afterText = ""
        var afterInt: Int64 = 0
        let joiner = select.contains(" WHERE ") ? "AND" : "WHERE"
        while true {
            let page: StoreSQL = integerKey
                ? "\(raw: select) \(raw: joiner) \(raw: key) > \(afterInt) ORDER BY \(raw: key) LIMIT \(batch)"
                : "\(raw: select) \(raw: joiner) \(raw: key) > \(afterText) ORDER BY \(raw: key) LIMIT \(batch)"
            let rows = try await driver.read([page])[0]
            guard let last = rows.last else { return count }
            if integerKey { afterInt = Int64(try last.int("k")) } else { afterText = try last.string("k") }
            let writes = try rows.compactMap(reseal)
            guard !writes.isEmpty else { continue }
            count += try await driver.transact(StoreTransaction { _ in
                StoreDecision(writes: writes) { written, _ in written.sets.reduce(0) { $0 + $1.count } }
            })
        }
    }
}

extension RowCoding {
    /// A credential's secret fields as stored (one column, sealed whole, bound to the credential).
    static func secrets(_ secrets: [String: String], _ keyring: SecretKeyring, id: String) -> String {
        keyring.seal(json(secrets), context: "credential:\(id):secrets")
    }

    /// A credential as read. Secrets that do not open (damaged, moved from another row, or
    /// sealed with a key not given) read as none, and the credential as `needs_reauth`
    /// saying so: it can still be shown, given new secrets or deleted.
    static func credential(_ row: some StoreRow, _ keyring: SecretKeyring) throws -> Credential {
        let type = try row.string("type")
        guard let kind = CredentialType(rawValue: type) else { throw WrongType(column: "type", expected: "a credential type") }
        let id = try row.string("id")
        var fields = try decode(JSONObject.self, try row.string("fields"), column: "fields") ?? [:]
        var secrets: [String: String] = [:]
        var unreadable: String?
        do {
            secrets = try decode([String: String].self, try keyring.open(try row.string("secrets"), context: "credential:\(id):secrets"), column: "secrets") ?? [:]
        } catch {
            unreadable = "its stored secrets do not open (\(error)); give them again"
        }
        // extra_params are kept with the secrets (some are secrets, all are sealed).
        if let extra = secrets.removeValue(forKey: "extra_params"), let object = try? decode(JSONObject.self, extra, column: "secrets") {
            fields["extra_params"] = .object(object)
        }
        let token = try row.optionalString("access_token").flatMap { try? keyring.open($0, context: "credential:\(id):access_token") }
        let status = CredentialStatus(rawValue: try row.string("status")) ?? .needsReauth
        let storedReason = try row.optionalString("status_reason")
        return Credential(
            id: id, name: try row.string("name"), type: kind, fields: fields, secrets: secrets,
            status: unreadable == nil ? status : .needsReauth,
            statusReason: unreadable ?? storedReason,
            accessToken: token,
            tokenExpiresAt: date(try row.optionalDouble("token_expires_at")),
            lastRefreshAt: date(try row.optionalDouble("last_refresh_at")),
            refreshCount: try row.int("refresh_count"), version: try row.int("version"),
            createdAt: Date(timeIntervalSince1970: try row.double("created_at")),
            updatedAt: Date(timeIntervalSince1970: try row.double("updated_at")))
    }

    /// The credential with its fields and secrets as stored.
    static func storedForm(_ credential: Credential) -> Credential {
        var c = credential
        (c.fields, c.secrets) = stored(credential)
        return c
    }

    /// A credential's fields and secrets as stored: `extra_params` go with the secrets.
    static func stored(_ credential: Credential) -> (fields: JSONObject, secrets: [String: String]) {
        var fields = credential.fields
        var secrets = credential.secrets
        if let extra = fields.removeValue(forKey: "extra_params") { secrets["extra_params"] = json(extra) }
        return (fields, secrets)
    }
}
