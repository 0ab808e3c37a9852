import Foundation
import Hummingbird
import SyncCore
import SyncStore

/// `/v1/sources`: create, list, read, patch, delete.
struct SourceRoutes {
    let env: APIEnvironment

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.post, "/v1/sources", in: table) { request, _ in
            let body = try RequestBody.object(try await request.bodyBytes(limit: env.maxBodyBytes))
            var source = try SourceInput.create(body, kinds: env.kinds, now: Date())
            try await resolveCredential(&source)
            try await checkEgress(source)
            let created = try await stillCredentialed(source) { try await env.store.createSource(source) }
            var headers = HTTPFields()
            headers[.location] = "/v1/sources/\(created.id)"
            return try await respond(created, status: .created, headers: headers)
        }
        router.add(.get, "/v1/sources", in: table) { request, _ in
            let page = try PageQuery.parse(request, cursorKind: "src")
            let paused: Bool? = request.uri.queryParameters["paused"] == nil ? nil : try PageQuery.flag(request, "paused")
            let views = try await env.store.sourceViews(limit: page.limit + 1, after: page.after, paused: paused)
            let items = views.prefix(page.limit).map { APIRepresentation.source($0.source, summary: $0.summary) }
            let next = views.count > page.limit ? views[page.limit - 1].source.id : nil
            return JSONResponse.make(APIRepresentation.page(items, nextCursor: next.map { Cursor.encode($0, kind: "src") }))
        }
        router.add(.get, "/v1/sources/{id}", in: table) { request, context in
            let view = try await env.sourceView(try request.path("id", context))
            return JSONResponse.make(APIRepresentation.source(view.source, summary: view.summary))
        }
        router.add(.patch, "/v1/sources/{id}", in: table) { request, context in
            let existing = try await env.source(try request.path("id", context))
            let body = try RequestBody.object(try await request.bodyBytes(limit: env.maxBodyBytes))
            var updated = try SourceInput.patch(existing, with: body, kinds: env.kinds, now: Date())
            if updated.credential != existing.credential { try await resolveCredential(&updated) }
            try await checkEgress(updated)
            let stale = SourceInput.stateKeysInvalidated(from: existing, to: updated, kinds: env.kinds)
            return try await respond(try await stillCredentialed(updated) { try await env.store.updateSource(updated, clearingState: stale) })
        }
        // Reset (docs/sources.md): clear the saved state, mark the live records deleted, or both.
        router.add(.post, "/v1/sources/{id}/reset", in: table) { request, context in
            let source = try await env.source(try request.path("id", context))
            let input = try ResetInput.parse(try await request.bodyBytes(limit: env.maxBodyBytes))
            let reset = try await env.store.resetSource(sourceID: source.id, state: input.state, records: input.records,
                                                        trigger: SyncRoutes.trigger(request), now: Date())
            return JSONResponse.make(APIRepresentation.reset(reset), status: .created)
        }
        router.add(.get, "/v1/sources/{id}/resets", in: table) { request, context in
            let source = try await env.source(try request.path("id", context))
            let page = try PageQuery.parse(request, cursorKind: "rst")
            let resets = try await env.store.resets(sourceID: source.id, limit: page.limit + 1, before: page.after)
            let items = resets.prefix(page.limit).map(APIRepresentation.reset)
            let next = resets.count > page.limit ? resets[page.limit - 1].id : nil
            return JSONResponse.make(APIRepresentation.page(items, nextCursor: next.map { Cursor.encode($0, kind: "rst") }))
        }
        // Pause and resume (docs/queue.md): a paused source is neither scheduled nor claimed.
        for (action, paused) in [("pause", true), ("resume", false)] {
            router.add(.post, "/v1/sources/{id}/\(action)", in: table) { request, context in
                let source = try await env.source(try request.path("id", context))
                return try await respond(try await env.store.setPaused(sourceID: source.id, paused: paused, now: Date()))
            }
        }
        router.add(.delete, "/v1/sources/{id}", in: table) { request, context in
            let source = try await env.source(try request.path("id", context))
            try await env.store.deleteSource(id: source.id)
            return Response(status: .noContent)
        }
    }

    /// The source's `credential` (an id or a name as given) as the credential's id.
    private func resolveCredential(_ source: inout Source) async throws {
        guard let given = source.credential else { return }
        guard let credential = try await env.store.credential(idOrName: given) else {
            throw Problem.validation([FieldError("credential", "no credential has the id or name \(given)")])
        }
        source.credential = credential.id
    }

    /// Runs a write of `source`; when it fails because its credential was deleted meanwhile
    /// (the database's foreign key refused it), the answer is the same `422` as a credential
    /// that never existed.
    private func stillCredentialed<T>(_ source: Source, _ write: () async throws -> T) async throws -> T {
        do {
            return try await write()
        } catch {
            if let id = source.credential, try await env.store.credential(idOrName: id) == nil {
                throw Problem.validation([FieldError("credential", "no credential has the id or name \(id)")])
            }
            throw error
        }
    }

    /// A URL the egress policy blocks is `403 forbidden` at create and update time (docs/api.md).
    private func checkEgress(_ source: Source) async throws {
        let webhookErrors = await WebhookInput.checkEgress(source.notify, policy: env.egress)
        if !webhookErrors.isEmpty { throw Problem.validation(webhookErrors) }
        do {
            try await env.kinds.kind(named: source.kind)?.checkEgress(config: source.config)
        } catch let error as SyncError where error.code == .egressBlocked {
            throw Problem.forbidden(error.message)
        }
    }

    private func respond(_ source: Source, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) async throws -> Response {
        JSONResponse.make(APIRepresentation.source(source, summary: try await env.store.summary(sourceID: source.id)),
                          status: status, headers: headers)
    }
}
