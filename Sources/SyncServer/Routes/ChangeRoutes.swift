import Foundation
import Hummingbird
import Synchronization
import SyncCore

/// `GET /v1/sources/{id}/changes`: the source's change feed (docs/api.md, "Change feed").
///
/// Each record comes once, at its current state, at the number of its last change; a
/// record changed again after a reader passed it comes again later. Numbers commit in
/// order (the store gives them under the source's feed lock), so a reader that follows
/// `next_cursor` never skips a change that commits later.
struct ChangeRoutes {
    let env: APIEnvironment
    static let maxLimit = 10_000
    static let defaultLimit = 1_000
    static let maxWaitSeconds = 60.0
    /// On SQLite another process's commits send no event here: a waiting reader looks again
    /// this often (PostgreSQL's events come from every node).
    static let recheck = Duration.seconds(2)

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.get, "/v1/sources/{id}/changes", in: table) { request, context in
            let source = try await env.source(try request.path("id", context))
            let query = try ChangeQuery.parse(request)
            let after = try await position(of: query.after, in: source, field: "after")
            let until = try await position(of: query.until, in: source, field: "until")
            // A stretch that ends at `until` has nothing to wait for (cursors are never past the head).
            let ticket = query.waitSeconds > 0 && until == nil ? env.changes.register(sourceID: source.id) : nil
            defer { if let ticket { env.changes.unregister(ticket, sourceID: source.id) } }
            // A client that goes away while its request waits frees the connection at once
            // (it held one of the node's connections for the whole wait).
            let gone = PeerGone()
            var unwatch: @Sendable () -> Void = {}
            if let ticket, let channel = context.channel {
                let changes = env.changes, sourceID = source.id
                unwatch = await PeerClosedWatch.install(on: channel) {
                    gone.flag.store(true, ordering: .relaxed)
                    changes.wake(ticket, sourceID: sourceID)
                }
            }
            defer { unwatch() }
            let deadline = ContinuousClock.now + .milliseconds(Int64(query.waitSeconds * 1000))
            while true {
                let page = try await read(source: source, after: after ?? 0, until: until, limit: query.limit, op: query.op)
                try await check(after, page: page, sourceID: source.id)
                try await check(until, page: page, sourceID: source.id)
                let now = ContinuousClock.now
                guard page.items == 0, let ticket, now < deadline, !gone.flag.load(ordering: .relaxed) else {
                    return JSONResponse.bytes(page.body(sourceID: source.id, after: after))
                }
                await env.changes.wait(ticket, sourceID: source.id, timeout: min(deadline - now, Self.recheck))
                if Task.isCancelled { return JSONResponse.bytes(page.body(sourceID: source.id, after: after)) }
            }
        }
    }

    /// Where a cursor points in this source's feed (`nil`: no cursor, the beginning).
    private func position(of cursor: String?, in source: Source, field: String) async throws -> Int64? {
        guard let cursor else { return nil }
        guard let decoded = Cursor.decode(cursor, kind: "chg"), let dot = decoded.lastIndex(of: "."),
              let change = Int64(decoded[decoded.index(after: dot)...]), change >= 0,
              decoded[decoded.index(after: dot)...].allSatisfy(\.isASCIIDigit)
        else { throw Problem.validation([FieldError(field, "is not a change cursor issued by this server")]) }
        let owner = String(decoded[..<dot])
        guard owner == source.id else {
            if try await env.store.source(idOrName: owner)?.id == owner {
                throw Problem.validation([FieldError(field, "is a cursor of another source")])
            }
            // Its source was deleted (and perhaps made again under this name).
            throw Problem.cursorExpired("The cursor's source no longer exists; read the feed from the beginning.")
        }
        return change
    }

    /// A cursor below the floor was issued before the source's records were reset; one past
    /// the head names changes this store never gave (a database restored from an older copy).
    private func check(_ after: Int64?, page: FeedPage, sourceID: String) async throws {
        guard let after else { return }
        if after < page.floor {
            throw Problem.cursorExpired("The source's records were reset after this cursor was issued; read the feed from the beginning.")
        }
        if after > page.head {
            // A source deleted while its reader waited has no feed any more.
            if try await env.store.source(idOrName: sourceID) == nil {
                throw Problem.cursorExpired("The cursor's source no longer exists; read the feed from the beginning.")
            }
            throw Problem.cursorExpired("The cursor is ahead of the source's feed; read the feed from the beginning.")
        }
    }

    /// One page, read in batches sized by what the page has cost so far and ended once its
    /// body passes ``RecordRoutes/maxPageBytes`` (with at least one change): memory per
    /// reader follows the byte bound, not record size × limit.
    private func read(source: Source, after: Int64, until: Int64?, limit: Int, op: ChangeOp?) async throws -> FeedPage {
        var page = FeedPage()
        page.until = until
        /// Whether a change is within the asked stretch (every one without `until`).
        func asked(_ change: RecordChange) -> Bool { until.map { change.change <= $0 } ?? true }
        var position = after
        reading: while page.items < limit {
            let average = page.items == 0 ? 0 : page.out.count / page.items
            let want = page.items == 0
                ? min(limit, 64)
                : min(limit - page.items, max(1, (RecordRoutes.maxPageBytes - page.out.count) / max(1, average)))
            let batch = try await env.store.changes(sourceID: source.id, after: position, limit: want + 1, op: op)
            if page.items == 0 && position == after {
                page.head = batch.head
                page.floor = batch.floor
            }
            for (index, change) in batch.changes.prefix(want).enumerated() {
                if !asked(change) {
                    page.more = false
                    break reading
                }
                page.append(change)
                position = change.change
                if page.out.count >= RecordRoutes.maxPageBytes {
                    page.more = index + 1 < batch.changes.count && asked(batch.changes[index + 1])
                    break reading
                }
            }
            // More only when the next change is within the asked stretch.
            page.more = batch.changes.count > want && asked(batch.changes[want])
            if !page.more { break }
        }
        page.last = page.items > 0 ? position : nil
        return page
    }
}

/// Set once the client of a waiting request has closed its connection.
final class PeerGone: Sendable {
    let flag = Atomic<Bool>(false)
}

/// A page of the feed as it is written: the items' JSON and where it ends.
struct FeedPage {
    var out: [UInt8] = Array(#"{"items":["#.utf8)
    var items = 0
    var more = false
    var last: Int64?
    var head: Int64 = 0
    var floor: Int64 = 0
    /// The last number the reader asked for (`until`), if any.
    var until: Int64?

    mutating func append(_ change: RecordChange) {
        if items > 0 { out.append(UInt8(ascii: ",")) }
        items += 1
        out.reserve(more: change.record.data.count + 200)
        out += #"{"change":"#.utf8
        out += String(change.change).utf8
        out += #","changed_at":"#.utf8
        JSONWriter.write(APIRepresentation.date(change.record.deletedAt ?? change.record.updatedAt), into: &out)
        out += #","key":"#.utf8
        JSONWriter.writeString(change.record.key, into: &out)
        out += #","op":""#.utf8
        out += change.op.rawValue.utf8
        out += #"","record":"#.utf8
        out += change.record.data
        out += #","sync_id":"#.utf8
        if let syncID = change.record.syncID { JSONWriter.writeString(syncID, into: &out) } else { out += "null".utf8 }
        out.append(UInt8(ascii: "}"))
    }

    /// The body: `next_cursor` is always given. After the last item of a full page; else
    /// the head read before the items (every number up to it had committed, and none after
    /// the cursor was left), so a filtered or idle reader does not walk the same range again.
    func body(sourceID: String, after: Int64?) -> [UInt8] {
        let next: Int64
        if more, let last {
            next = last
        } else {
            next = max(last ?? 0, after ?? floor, until.map { min($0, head) } ?? head)
        }
        var out = out
        out += #"],"has_more":"#.utf8
        out += (more ? "true" : "false").utf8
        out += #","next_cursor":""#.utf8
        out += ChangeCursor.encode(sourceID: sourceID, change: next).utf8
        out += #""}"#.utf8
        return out
    }
}

/// The feed's cursor: the source it belongs to and the change number it stands after.
enum ChangeCursor {
    static func encode(sourceID: String, change: Int64) -> String {
        Cursor.encode("\(sourceID).\(change)", kind: "chg")
    }
}

/// The feed's query parameters.
struct ChangeQuery {
    var after: String?
    var until: String?
    var limit = ChangeRoutes.defaultLimit
    var op: ChangeOp?
    var waitSeconds = 0.0

    static func parse(_ request: Request) throws(Problem) -> ChangeQuery {
        let parameters = request.uri.queryParameters
        var query = ChangeQuery()
        var errors: [FieldError] = []
        if let raw = parameters["after"], !raw.isEmpty { query.after = String(raw) }
        if let raw = parameters["until"], !raw.isEmpty { query.until = String(raw) }
        if let raw = parameters["limit"] {
            if let limit = Int(String(raw)), (1...ChangeRoutes.maxLimit).contains(limit), raw.allSatisfy(\.isASCIIDigit) {
                query.limit = limit
            } else {
                errors.append(FieldError("limit", "must be an integer between 1 and \(ChangeRoutes.maxLimit)"))
            }
        }
        if let raw = parameters["op"] {
            if let op = ChangeOp(rawValue: String(raw)) {
                query.op = op
            } else {
                errors.append(FieldError("op", "must be one of \(ChangeOp.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
        }
        if let raw = parameters["wait"] {
            // Digits and one point only: no `inf`, `nan`, exponents or signs.
            if raw.allSatisfy({ $0.isASCIIDigit || $0 == "." }), let seconds = Double(String(raw)), seconds.isFinite,
               (0...ChangeRoutes.maxWaitSeconds).contains(seconds) {
                query.waitSeconds = seconds
            } else {
                errors.append(FieldError("wait", "must be a number of seconds between 0 and \(Int(ChangeRoutes.maxWaitSeconds))"))
            }
        }
        if !errors.isEmpty { throw Problem.validation(errors) }
        return query
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension Problem {
    /// `410 cursor_expired`: the feed this cursor pointed into is gone (the source's records
    /// were reset, or the source deleted); the reader starts again from the beginning.
    static func cursorExpired(_ detail: String) -> Problem {
        Problem(.gone, code: "cursor_expired", title: "The cursor has expired", detail: detail)
    }
}
