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
            let bytes = try await request.bodyBytes(limit: env.maxBodyBytes)
            let body = try RequestBody.object(bytes, allowEmpty: true)
            var errors: [FieldError] = []
            for key in body.keys where key != "mode" && key != "priority" { errors.append(FieldError(key, "unknown field")) }
            var mode = source.defaultMode
            if let m = body["mode"] {
                if let s = m.stringValue, let parsed = SyncMode(rawValue: s) { mode = parsed }
                else { errors.append(FieldError("mode", "must be one of: incremental, full")) }
            }
            var priority = source.priority
            if let p = body["priority"] {
                if let i = p.intValue, (-1000...1000).contains(i) { priority = i }
                else { errors.append(FieldError("priority", "must be an integer between -1000 and 1000")) }
            }
            if mode == .incremental && !source.supportsIncremental {
                errors.append(FieldError("mode", "the source has no incremental config; use full"))
            }
            guard errors.isEmpty else { throw Problem.validation(errors) }
            let key = request.headers[.idempotencyKey]
            if let key, !(1...255).contains(key.utf8.count) {
                throw Problem.validation([FieldError("Idempotency-Key", "must be 1–255 characters")])
            }
            let outcome = try await env.store.enqueue(EnqueueRequest(
                sourceID: source.id, mode: mode, priority: priority, trigger: Self.trigger(request),
                idempotencyKey: key, requestFingerprint: "\(mode.rawValue)|\(priority)"))
            var headers = HTTPFields()
            headers[.location] = "/v1/syncs/\(outcome.sync.id)"
            return JSONResponse.make(APIRepresentation.sync(outcome.sync), status: .accepted, headers: headers)
        }
        router.add(.get, "/v1/syncs", in: table) { request, _ in
            let page = try PageQuery.parse(request, cursorKind: "syn")
            let filter = try Self.filter(request)
            let syncs = try await env.store.listSyncs(filter, limit: page.limit + 1, before: page.after)
            let next = syncs.count > page.limit ? syncs[page.limit - 1].id : nil
            return JSONResponse.make(APIRepresentation.page(
                syncs.prefix(page.limit).map(APIRepresentation.sync), nextCursor: next.map { Cursor.encode($0, kind: "syn") }))
        }
        router.add(.get, "/v1/syncs/{id}", in: table) { request, context in
            JSONResponse.make(APIRepresentation.sync(try await sync(try request.path("id", context))))
        }
        router.add(.post, "/v1/syncs/{id}/cancel", in: table) { request, context in
            let id = try request.path("id", context)
            let sync = try await env.store.requestCancel(syncID: id, now: Date())
            return JSONResponse.make(APIRepresentation.sync(sync), status: .accepted)
        }
        router.add(.post, "/v1/syncs/{id}/retry", in: table) { request, context in
            let sync = try await env.store.retry(syncID: try request.path("id", context), now: Date())
            return JSONResponse.make(APIRepresentation.sync(sync), status: .accepted)
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
                .object(["page": .number(Double(row.error.page)),
                         "record_key": row.error.recordKey.map(JSONValue.string) ?? .null,
                         "message": .string(row.error.message)])
            }
            let next = rows.count > page.limit ? Cursor.encode(String(rows[page.limit - 1].id), kind: "rer") : nil
            return JSONResponse.make(APIRepresentation.page(items, nextCursor: next))
        }
    }

    private func sync(_ id: String) async throws -> Sync {
        guard let sync = try await env.store.sync(id: id) else { throw Problem.notFound("No sync \(id).") }
        return sync
    }

    /// `cli` when the request comes from the tributary command line, else `api`.
    static func trigger(_ request: Request) -> SyncTrigger {
        request.headers[.userAgent]?.hasPrefix("tributary-cli") == true ? .cli : .api
    }

    static func filter(_ request: Request) throws(Problem) -> SyncFilter {
        var filter = SyncFilter()
        var errors: [FieldError] = []
        let query = request.uri.queryParameters
        filter.sourceID = query["source_id"].map(String.init)
        for raw in query.getAll("status") {
            for part in raw.split(separator: ",") {
                if let s = SyncStatus(rawValue: String(part)) { filter.statuses.append(s) }
                else { errors.append(FieldError("status", "unknown status \(part); one of \(SyncStatus.allCases.map(\.rawValue).joined(separator: ", "))")) }
            }
        }
        for (name, keyPath) in [("since", \SyncFilter.since), ("until", \SyncFilter.until)] {
            if let raw = query[Substring(name)] {
                // Compared at the API's precision: times are stored finer than the milliseconds
                // they are shown with, so a sync's own `queued_at` (rounded to the nearest
                // millisecond) passed back as `since` must include it, and as `until` exclude it.
                if let d = Timestamp.parse(String(raw)) { filter[keyPath: keyPath] = d.addingTimeInterval(-0.0005) }
                else { errors.append(FieldError(name, "must be an RFC 3339 timestamp")) }
            }
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        return filter
    }
}
