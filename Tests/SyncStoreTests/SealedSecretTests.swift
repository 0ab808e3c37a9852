import Foundation
import GRDB
import Testing
import SyncCore
@testable import SyncStore
import TestSupport

/// Sealed secrets in the store (docs/credentials.md, "Secrets at rest"): bound to their
/// row, never in clear, and a value that does not open leaves the row usable.
@Suite("Sealed secrets in the store")
struct SealedSecretTests {
    func withSealedStore(_ body: (DatabaseStore, DatabaseQueue) async throws -> Void) async throws {
        let dir = try TemporaryDirectory("sealed")
        defer { dir.remove() }
        let keyring = try SecretKeyring(rawKeys: [(0..<32).map { _ in UInt8.random(in: 0...255) }])
        let path = dir.file("s.sqlite")
        let store = try DatabaseStore.sqlite(path: path, keyring: keyring).start()
        try await store.migrate()
        try await body(store, try DatabaseQueue(path: path))
        await store.close()
    }

    func bearer(_ name: String, _ token: String) -> Credential {
        Credential(id: "cred_" + Identifier.make("crd").dropFirst(4), name: name, type: .bearer, secrets: ["token": token],
                   createdAt: Date(), updatedAt: Date())
    }

    /// A sealed value copied onto another credential's row does not open there: that
    /// credential reads as needing new secrets, never with the other one's token.
    @Test func aSealedValueMovedToAnotherRowDoesNotOpen() async throws {
        try await withSealedStore { store, raw in
            let a = try await store.createCredential(bearer("a", "token-of-a-123"))
            let b = try await store.createCredential(bearer("b", "token-of-b-456"))
            try await raw.write { db in
                try db.execute(sql: "UPDATE credentials SET secrets = (SELECT secrets FROM credentials WHERE id = ?) WHERE id = ?", arguments: [a.id, b.id])
            }
            let moved = try #require(try await store.credential(idOrName: "b"))
            #expect(moved.secrets.isEmpty)
            #expect(moved.status == .needsReauth)
            #expect(moved.statusReason?.contains("do not open") == true)
            #expect(try await store.credential(idOrName: "a")?.secrets == ["token": "token-of-a-123"])
        }
    }

    /// A damaged credential or source can still be listed, given new secrets and deleted; a
    /// claimed sync of the source says its secrets do not open.
    @Test func aDamagedValueLeavesItsRowUsable() async throws {
        try await withSealedStore { store, raw in
            let c = try await store.createCredential(bearer("c", "token-of-c-789"))
            let made = makeSource(name: "h", kind: "http-json", config: [
                "url": .string("http://127.0.0.1:9/x"), "records_path": .string("/r"), "primary_key": .string("id"),
                "headers": .object(["X-Key": .string("header-secret-1")]),
            ])
            let source = try await store.createSource(made)
            try await raw.write { db in
                try db.execute(sql: "UPDATE credentials SET secrets = 'enc:v1:deadbeef:AAAA' WHERE id = ?", arguments: [c.id])
                try db.execute(sql: "UPDATE sources SET config = replace(config, substr(config, instr(config, 'enc:v1:') + 20, 4), 'AAAA') WHERE id = ?",
                               arguments: [source.id])
            }
            #expect(try await store.credentials(limit: 10, after: nil).count == 1)
            var damaged = try #require(try await store.credential(idOrName: "c"))
            #expect(damaged.status == .needsReauth)
            damaged.secrets = ["token": "new-token-1"]
            let repaired = try await store.updateCredential(damaged, secretsChanged: true, now: Date())
            #expect(repaired.status == .active && repaired.secrets == ["token": "new-token-1"])

            let shown = try #require(try await store.source(idOrName: "h"))
            #expect(shown.config["headers"]?["X-Key"] == .string("***"))
            _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
            let claimed = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
            #expect(claimed.secretsUnreadable)
            try await store.deleteCredential(id: c.id)
        }
    }

    /// Every extra_params value is sealed with the secrets: none is in the fields column.
    @Test func extraParamsAreSealed() async throws {
        try await withSealedStore { store, raw in
            let c = Credential(id: "cred_" + Identifier.make("crd").dropFirst(4), name: "o", type: .oauth2ClientCredentials,
                               fields: ["token_url": .string("http://127.0.0.1:9/t"), "client_id": .string("id"),
                                        "extra_params": .object(["password": .string("extra-secret-pw"), "resource": .string("crm")])],
                               secrets: ["client_secret": "client-secret-1"], createdAt: Date(), updatedAt: Date())
            _ = try await store.createCredential(c)
            let columns = try await raw.read { db in try String.fetchOne(db, sql: "SELECT fields || secrets FROM credentials") ?? "" }
            #expect(!columns.contains("extra-secret-pw") && !columns.contains("crm") && !columns.contains("client-secret-1"))
            let read = try #require(try await store.credential(idOrName: "o"))
            #expect(read.fields["extra_params"] == .object(["password": .string("extra-secret-pw"), "resource": .string("crm")]))
        }
    }

    /// A pending webhook delivery whose signing secret does not open is failed with the
    /// reason; the outbox goes on with the others.
    @Test func aDeliveryWhoseSecretDoesNotOpenFailsAloneAndTheOutboxGoesOn() async throws {
        try await withSealedStore { store, raw in
            var made = makeSource(name: "w")
            made.notify = [WebhookTarget(url: "http://a.example/h", secret: "secret-a-1"), WebhookTarget(url: "http://b.example/h", secret: "secret-b-2")]
            let source = try await store.createSource(made)
            _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .api))
            let claimed = try #require(try await store.claimNext(owner: "n", leaseSeconds: 30, now: Date()))
            _ = try await store.finish(claimed.lease, outcome: .completed, now: Date())
            try await raw.write { db in
                try db.execute(sql: "UPDATE webhook_deliveries SET secret = 'enc:v1:00000000:AAAA' WHERE url = 'http://a.example/h'")
            }
            let batch = try await store.claimDeliveries(owner: "n", leaseSeconds: 30, now: Date(), limit: 10, perReceiver: 5, excludingReceivers: [])
            #expect(batch.map(\.url) == ["http://b.example/h"])
            #expect(batch.first?.secret == "secret-b-2")
            let failed = try await raw.read { db in try String.fetchOne(db, sql: "SELECT status || ':' || last_error FROM webhook_deliveries WHERE url = 'http://a.example/h'") }
            #expect(failed?.hasPrefix("failed:its signing secret does not open") == true, "\(failed ?? "")")
        }
    }
}
