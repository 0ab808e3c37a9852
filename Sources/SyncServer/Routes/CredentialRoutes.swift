import Foundation
import Hummingbird
import SyncCore
import SyncStore

/// `/v1/credentials`: create, list, read, patch, delete (docs/credentials.md). Secrets are
/// write-only: shown as `"***"`, and `"***"` sent back keeps what is stored.
struct CredentialRoutes {
    let env: APIEnvironment

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.post, "/v1/credentials", in: table) { request, _ in
            let body = try RequestBody.object(try await request.bodyBytes(limit: env.maxBodyBytes))
            let credential = try CredentialInput.create(body, now: Date())
            try await checkEgress(credential)
            let created = try await env.store.createCredential(credential)
            var headers = HTTPFields()
            headers[.location] = "/v1/credentials/\(created.id)"
            return JSONResponse.make(APIRepresentation.credential(created, sources: 0), status: .created, headers: headers)
        }
        router.add(.get, "/v1/credentials", in: table) { request, _ in
            let page = try PageQuery.parse(request, cursorKind: "crd")
            let credentials = try await env.store.credentials(limit: page.limit + 1, after: page.after)
            let shown = Array(credentials.prefix(page.limit))
            let usage = try await env.store.credentialUsage(ids: shown.map(\.id))
            let items = shown.map { APIRepresentation.credential($0, sources: usage[$0.id] ?? 0) }
            let next = credentials.count > page.limit ? credentials[page.limit - 1].id : nil
            return JSONResponse.make(APIRepresentation.page(items, nextCursor: next.map { Cursor.encode($0, kind: "crd") }))
        }
        router.add(.get, "/v1/credentials/{id}", in: table) { request, context in
            try await respond(try await env.credential(try request.path("id", context)))
        }
        router.add(.patch, "/v1/credentials/{id}", in: table) { request, context in
            let existing = try await env.credential(try request.path("id", context))
            let body = try RequestBody.object(try await request.bodyBytes(limit: env.maxBodyBytes))
            let (updated, changed) = try CredentialInput.patch(existing, with: body, now: Date())
            try await checkEgress(updated)
            return try await respond(try await env.store.updateCredential(updated, secretsChanged: changed, now: Date()))
        }
        router.add(.delete, "/v1/credentials/{id}", in: table) { request, context in
            let credential = try await env.credential(try request.path("id", context))
            try await env.store.deleteCredential(id: credential.id)
            return Response(status: .noContent)
        }
    }

    /// A token endpoint the egress policy blocks is `403 forbidden` at create and update time.
    private func checkEgress(_ credential: Credential) async throws {
        guard let text = credential.text("token_url"), let url = URL(string: text), let host = url.host else { return }
        do {
            _ = try await env.egress.vet(host: host, port: url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80))
        } catch let error as SyncError where error.code == .egressBlocked {
            throw Problem.forbidden("token_url: " + error.message)
        } catch {}
    }

    private func respond(_ credential: Credential) async throws -> Response {
        let usage = try await env.store.credentialUsage(ids: [credential.id])
        return JSONResponse.make(APIRepresentation.credential(credential, sources: usage[credential.id] ?? 0))
    }
}

extension APIEnvironment {
    func credential(_ idOrName: String) async throws -> Credential {
        guard let credential = try await store.credential(idOrName: idOrName) else { throw Problem.notFound("No credential \(idOrName).") }
        return credential
    }
}

extension APIRepresentation {
    /// A credential as shown: its config (plain fields as given, each secret that is set
    /// as `"***"`), its status, and for OAuth2 when its cached access token expires, when it was
    /// last refreshed and how often. Never a token itself.
    static func credential(_ credential: Credential, sources: Int) -> JSONValue {
        var out: JSONObject = [
            "id": .string(credential.id),
            "name": .string(credential.name),
            "type": .string(credential.type.rawValue),
            "status": .string(credential.status.rawValue),
            "status_reason": credential.statusReason.map(JSONValue.string) ?? .null,
            "sources": int(sources),
            "created_at": date(credential.createdAt),
            "updated_at": date(credential.updatedAt),
        ]
        var config = JSONObject()
        for field in credential.type.plainFields {
            guard let value = credential.fields[field] else { continue }
            config[field] = field == "extra_params" ? (value.objectValue.map { .object(SecretRedaction.redact($0, underHeaders: false)) } ?? value) : value
        }
        for field in credential.type.secretFields where credential.secrets[field] != nil {
            config[field] = SecretRedaction.mask
        }
        out["config"] = .object(config)
        let oauth = credential.type.isOAuth2
        out["token_expires_at"] = oauth ? date(credential.tokenExpiresAt) : .null
        out["last_refresh_at"] = oauth ? date(credential.lastRefreshAt) : .null
        out["refreshes"] = oauth ? int(credential.refreshCount) : .null
        return .object(out)
    }
}
