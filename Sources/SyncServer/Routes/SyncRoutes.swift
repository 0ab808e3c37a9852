import Foundation
import Hummingbird
import SyncCore
import SyncStore

/// Triggering, listing, reading, cancelling and retrying syncs.
struct SyncRoutes {
    let env: APIEnvironment

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.post, "/v1/sources/{id}/syncs", in: table) { request, context in
            let source = try await env.source(try request.path("id", context))
            let input = try TriggerInput.parse(try await request.bodyBytes(limit: env.maxBodyBytes),
                                               idempotencyKey: request.headers[.idempotencyKey], source: source)
            let outcome = try await env.store.enqueue(EnqueueRequest(
                sourceID: source.id, mode: input.mode, priority: input.priority, trigger: Self.trigger(request),
                idempotencyKey: input.idempotencyKey, requestFingerprint: input.fingerprint))
            var headers = HTTPFields()
            headers[.location] = "/v1/syncs/\(outcome.sync.id)"
            return JSONResponse.make(APIRepresentation.sync(outcome.sync), status: .accepted, headers: headers)
        }
        router.add(.get, "/v1/syncs", in: table) { request, _ in
            let page = try PageQuery.parse(request, cursorKind: "syn")
            var filter = try SyncListQuery.filter(request)
            // A name stands for its source, as in the bulk actions' filter and /v1/events
            // (an id is used as it is; an unknown name or id matches no sync).
            if let given = filter.sourceID, !given.hasPrefix("src_"), let source = try await env.store.source(idOrName: given) {
                filter.sourceID = source.id
            }
            let syncs = try await env.store.listSyncs(filter, limit: page.limit + 1, before: page.after)
            let next = syncs.count > page.limit ? syncs[page.limit - 1].id : nil
            return JSONResponse.make(APIRepresentation.page(
                syncs.prefix(page.limit).map(APIRepresentation.sync), nextCursor: next.map { Cursor.encode($0, kind: "syn") }))
        }
        router.add(.get, "/v1/syncs/{id}", in: table) { request, context in
            JSONResponse.make(APIRepresentation.sync(try await sync(try request.path("id", context))))
        }
        router.add(.post, "/v1/syncs/{id}/cancel", in: table) { request, context in
            let sync = try await cancel(try request.path("id", context)).sync
            return JSONResponse.make(APIRepresentation.sync(sync), status: .accepted)
        }
        // Bulk actions: each matching sync under the single-sync rules; one that a rule
        // refuses (already ended, another sync of its source active) is left as it is.
        router.add(.post, "/v1/syncs/cancel", in: table) { request, _ in
            // A sync counts as affected only for the call whose write changed it: two bulk
            // cancels racing over the same syncs add up to the syncs that exist. A thousand
            // syncs per transaction (one by one, 10,000 took minutes on PostgreSQL).
            try await bulk(request, defaultStatuses: SyncStatus.active, batch: 1000) { ids in
                let now = Date()
                let changed = try await env.store.cancel(syncIDs: ids, now: now)
                for sync in changed where sync.ended {
                    env.metrics.syncFinished(status: SyncStatus.cancelled.rawValue, kind: sync.sourceKind ?? "unknown",
                                             seconds: sync.startedAt.map { now.timeIntervalSince($0) })
                }
                return changed.count
            }
        }
        router.add(.post, "/v1/syncs/retry", in: table) { request, _ in
            try await bulk(request, defaultStatuses: [.failed, .cancelled], batch: 1) { ids in
                var affected = 0
                for id in ids {
                    do {
                        _ = try await env.store.retry(syncID: id, now: Date())
                        affected += 1
                    } catch let error as SyncStoreError {
                        // The rules refused this one (it ended meanwhile, or its source has
                        // another active sync): skipped, the others go on. A database fault
                        // stops the call.
                        if case .unavailable = error { throw error }
                    }
                }
                return affected
            }
        }
        router.add(.post, "/v1/syncs/{id}/retry", in: table) { request, context in
            let sync = try await env.store.retry(syncID: try request.path("id", context), now: Date())
            return JSONResponse.make(APIRepresentation.sync(sync), status: .accepted)
        }
        // A sync's webhook deliveries (docs/webhooks.md): few per sync (one per event and
        // webhook), so one page holds them all.
        router.add(.get, "/v1/syncs/{id}/deliveries", in: table) { request, context in
            let sync = try await sync(try request.path("id", context))
            let deliveries = try await env.store.deliveries(syncID: sync.id)
            return JSONResponse.make(APIRepresentation.page(deliveries.map(APIRepresentation.delivery), nextCursor: nil))
        }
        router.add(.get, "/v1/syncs/{id}/record-errors", in: table) { request, context in
            let sync = try await sync(try request.path("id", context))
            let page = try PageQuery.parse(request, cursorKind: "rer")
            var afterID: Int64 = 0
            if let after = page.after {
                guard let id = Int64(after) else {
                    throw Problem.validation([FieldError("cursor", "is not a cursor issued by this server")])
                }
                afterID = id
            }
            let rows = try await env.store.recordErrors(syncID: sync.id, limit: page.limit + 1, after: afterID)
            let items: [JSONValue] = rows.prefix(page.limit).map { row in
                .fields([RecordError.CodingKeys.page: .number(Double(row.error.page)),
                         .recordKey: row.error.recordKey.map(JSONValue.string) ?? .null,
                         .message: .string(row.error.message)])
            }
            let next = rows.count > page.limit ? Cursor.encode(String(rows[page.limit - 1].id), kind: "rer") : nil
            return JSONResponse.make(APIRepresentation.page(items, nextCursor: next))
        }
    }

    /// Cancels one sync. A queued or retrying sync ends here and now and is counted as
    /// finished (a repeated cancel returns the earlier end; a running one ends on its
    /// worker, which counts it).
    private func cancel(_ id: String) async throws -> (sync: Sync, changed: Bool) {
        let now = Date()
        let (sync, changed) = try await env.store.cancel(syncID: id, now: now)
        if changed, sync.status == .cancelled, let end = sync.finishedAt {
            let kind = try? await env.store.source(idOrName: sync.sourceID)?.kind
            env.metrics.syncFinished(status: sync.status.rawValue, kind: kind ?? "unknown",
                                     seconds: sync.startedAt.map { end.timeIntervalSince($0) })
        }
        return (sync, changed)
    }

    /// Applies `action` to every sync the body's filter matches (at most ``BulkFilter/maxSyncs``,
    /// newest first), `batch` ids per call; answers how many matched and how many the action
    /// changed.
    private func bulk(_ request: Request, defaultStatuses: [SyncStatus], batch: Int,
                      _ action: ([String]) async throws -> Int) async throws -> Response {
        var (filter, source) = try BulkFilter.parse(try await request.bodyBytes(limit: env.maxBodyBytes), defaultStatuses: defaultStatuses)
        if let source { filter.sourceID = try await env.source(source).id }
        var ids: [String] = []
        var before: String?
        while ids.count < BulkFilter.maxSyncs {
            let want = min(1000, BulkFilter.maxSyncs - ids.count)
            let page = try await env.store.listSyncs(filter, limit: want, before: before)
            ids += page.map(\.id)
            guard page.count == want, let last = page.last else { break }
            before = last.id
        }
        var affected = 0
        var start = 0
        while start < ids.count {
            let end = min(start + batch, ids.count)
            affected += try await action(Array(ids[start..<end]))
            start = end
        }
        return JSONResponse.make(.object(["affected": .number(Double(affected)), "matched": .number(Double(ids.count))]))
    }

    private func sync(_ id: String) async throws -> Sync {
        guard let sync = try await env.store.sync(id: id) else { throw Problem.notFound("No sync \(id).") }
        return sync
    }

    /// `cli` when the request comes from the tributary command line, else `api`.
    static func trigger(_ request: Request) -> SyncTrigger {
        request.headers[.userAgent]?.hasPrefix("tributary-cli") == true ? .cli : .api
    }
}
