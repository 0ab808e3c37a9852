import Foundation
import Hummingbird
import SyncCore

/// `/v1/sources/{id}/records`: the record store, keyset-paginated by key.
struct RecordRoutes {
    let env: APIEnvironment
    /// A records page ends once its body passes this many bytes (at least one record is
    /// always sent): `limit` records of 1 MiB each would otherwise be one 1 GB answer.
    static let maxPageBytes = 4 << 20

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.get, "/v1/sources/{id}/records", in: table) { request, context in
            let source = try await env.source(try request.path("id", context))
            let page = try PageQuery.parse(request, cursorKind: "rec", cursorParameter: "after")
            let includeDeleted = try PageQuery.flag(request, "include_deleted")
            if Self.wantsLines(request) {
                return export(sourceID: source.id, after: page.after, includeDeleted: includeDeleted)
            }
            var out: [UInt8] = Array(#"{"items":["#.utf8)
            var count = 0
            var after = page.after
            var more = false
            // Read in small batches sized by what the page has cost so far, and stop once the
            // page passes `maxPageBytes` (with at least one record): memory per reader follows
            // the byte bound, not record size × limit.
            reading: while count < page.limit {
                let average = count == 0 ? 0 : out.count / count
                let want = count == 0 ? min(page.limit, 8) : min(page.limit - count, max(1, (Self.maxPageBytes - out.count) / max(1, average)))
                let records = try await env.store.records(sourceID: source.id, limit: want + 1, after: after, includeDeleted: includeDeleted)
                for (index, record) in records.prefix(want).enumerated() {
                    if count > 0 { out.append(UInt8(ascii: ",")) }
                    APIRepresentation.record(record, into: &out)
                    count += 1
                    after = record.key
                    if out.count >= Self.maxPageBytes {
                        more = index + 1 < records.count
                        break reading
                    }
                }
                more = records.count > want
                if !more { break }
            }
            out += Array("],\"next_cursor\":".utf8)
            if more, let after {
                out += Array("\"\(Cursor.encode(after, kind: "rec"))\"".utf8)
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

    /// How much of an export is read and written at once: batches are sized so that each
    /// holds about this many bytes of JSON (at most ``exportBatch`` records).
    static let exportChunkBytes = 1 << 20
    static let exportBatch = 1000

    /// Whether the client asked for JSON lines (`Accept: application/x-ndjson`, or
    /// `application/jsonl`) rather than a JSON page.
    static func wantsLines(_ request: Request) -> Bool {
        guard let accept = request.headers[.accept] else { return false }
        return accept.split(separator: ",").contains { item in
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let type = parts.first, type == "application/x-ndjson" || type == "application/jsonl" else { return false }
            // `q=0` says "not this one".
            return !parts.dropFirst().contains { $0.replacingOccurrences(of: " ", with: "").range(of: #"^q=0(\.0*)?$"#, options: .regularExpression) != nil }
        }
    }

    /// Every record of the source after `after`, by key, one JSON object per line (the items'
    /// shape), streamed: read in keyset batches of about ``exportChunkBytes``, each written
    /// before the next is read, so memory follows the batch, not the source. A record
    /// changed during the export is written as its batch read it. A failure mid-stream cuts
    /// the connection before the chunked body's end, which a client sees as a transfer error.
    private func export(sourceID: String, after start: String?, includeDeleted: Bool) -> Response {
        let store = env.store
        var headers = HTTPFields()
        headers[.contentType] = "application/x-ndjson"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var after = start
            var want = 64
            while true {
                let records = try await store.records(sourceID: sourceID, limit: want, after: after, includeDeleted: includeDeleted)
                var out: [UInt8] = []
                out.reserveCapacity(Self.exportChunkBytes + Self.exportChunkBytes / 4)
                for record in records {
                    APIRepresentation.record(record, into: &out)
                    out.append(UInt8(ascii: "\n"))
                }
                if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
                guard records.count == want, let last = records.last else { break }
                after = last.key
                want = min(Self.exportBatch, max(1, Self.exportChunkBytes / max(1, out.count / records.count)))
            }
            try await writer.finish(nil)
        })
    }
}
