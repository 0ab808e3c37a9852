import Foundation
import Hummingbird
import SyncCore

/// `/v1/sources/{id}/records`: the record store, keyset-paginated by key.
struct RecordRoutes {
    let env: APIEnvironment

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.get, "/v1/sources/{id}/records", in: table) { request, context in
            let source = try await env.source(try request.path("id", context))
            let page = try PageQuery.parse(request, cursorKind: "rec", cursorParameter: "after")
            let includeDeleted = try PageQuery.flag(request, "include_deleted")
            let records = try await env.store.records(sourceID: source.id, limit: page.limit + 1, after: page.after, includeDeleted: includeDeleted)
            var out: [UInt8] = Array(#"{"items":["#.utf8)
            for (index, record) in records.prefix(page.limit).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                APIRepresentation.record(record, into: &out)
            }
            out += Array("],\"next_cursor\":".utf8)
            if records.count > page.limit {
                out += Array("\"\(Cursor.encode(records[page.limit - 1].key, kind: "rec"))\"".utf8)
            } else {
                out += Array("null".utf8)
            }
            out.append(UInt8(ascii: "}"))
            return JSONResponse.bytes(out)
        }
        router.add(.get, "/v1/sources/{id}/records/{key}", in: table) { request, context in
            let source = try await env.source(try request.path("id", context))
            // Keys travel percent-encoded (`a%20b`, `%C3%A9`, `a%2Fb`, `%5B7%2C%22eu%22%5D`).
            let key = try request.path("key", context)
            guard let record = try await env.store.record(sourceID: source.id, key: key) else {
                throw Problem.notFound("No record \(key) in source \(source.name).")
            }
            return JSONResponse.bytes(APIRepresentation.record(record))
        }
    }
}
