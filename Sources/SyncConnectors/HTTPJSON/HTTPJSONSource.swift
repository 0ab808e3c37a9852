import Foundation
import Synchronization
import SyncCore

/// The `http-json` kind: paginated JSON APIs (docs/api.md, "Sources").
public final class HTTPJSONSourceKind: SyncSourceKind {
    public let client: UpstreamClient

    public init(client: UpstreamClient) { self.client = client }
    public var name: String { "http-json" }

    public func validate(config: JSONObject) -> [FieldError] {
        switch HTTPJSONConfig.parse(config) {
        case .success: []
        case .failure(let f): f.errors
        }
    }

    /// Blocks a source whose URL the egress policy denies (a name that does not resolve now is not blocked).
    public func checkEgress(config: JSONObject) async throws {
        guard case .success(let parsed) = HTTPJSONConfig.parse(config), let host = parsed.url.host else { return }
        do {
            _ = try await client.egress.vet(host: host, port: parsed.url.port ?? 80)
        } catch let error as SyncError where error.code == .upstreamUnavailable {
            return
        }
    }

    /// The saved cursor is a value of `incremental.cursor_field` sent as `incremental.param`
    /// in `cursor_format`: a change of any (or dropping `incremental`) clears it, and so does
    /// a change of the partitions (per-partition cursors would name other partitions).
    public func stateKeysInvalidated(from old: JSONObject, to new: JSONObject) -> [String] {
        guard case .success(let before) = HTTPJSONConfig.parse(old), let was = before.incremental else { return [] }
        guard case .success(let after) = HTTPJSONConfig.parse(new) else { return [] }
        guard let now = after.incremental, now.cursorField.sameBytes(as: was.cursorField), (now.param ?? "").sameBytes(as: was.param ?? ""),
              now.format == was.format, before.partitions?.fromSource == after.partitions?.fromSource,
              before.partitions?.values == after.partitions?.values else { return ["cursor"] }
        return []
    }

    public func makeSource(_ context: SourceContext) throws -> any SyncSource {
        let config: HTTPJSONConfig
        switch HTTPJSONConfig.parse(context.source.config) {
        case .success(let c): config = c
        case .failure(let f):
            throw SyncError(.configInvalid, f.errors.map { "\($0.field) \($0.message)" }.joined(separator: "; "), retryable: false)
        }
        return HTTPJSONSource(
            config: config, client: client, gate: context.gate, credential: context.credential,
            state: context.source.state, full: context.mode == .full, parents: context.parents, sourceID: context.source.id)
    }
}

/// Reads one http-json source, one instance per attempt.
///
/// The checkpoint is an object: `url` (next_url, link_header), `cursor`, `page` or `offset`
/// for where the next page starts; `since` (the incremental cursor this sync filters by,
/// fixed for the whole sync); `max_cursor` (the largest cursor value read so far by this
/// sync); `read` (a fingerprint of the config that decides what the pages are).
///
/// Two rules keep records from being skipped:
/// - The source's saved cursor moves only with the sync's last page, in the transaction
///   that completes it, unless the config declares the upstream sorted by the cursor
///   (`incremental.sorted: true`), when it moves with every page. An upstream that is not
///   sorted may send a large cursor on page 1 and a small one on page 5: a sync that stops
///   at page 3 must not save the large one, or the next sync skips the rest.
/// - A checkpoint written under another `read` fingerprint (the URL, query, pagination,
///   records path, key or cursor changed since the sync started) is not continued: the read
///   starts again from the first page. Nothing is deleted on the way (a full sync deletes
///   only what neither read saw).
struct HTTPJSONSource: SyncSource {
    let config: HTTPJSONConfig
    let client: UpstreamClient
    let gate: (any RequestGate)?
    let credential: (any CredentialSupplier)?
    /// The source's saved state when the attempt started: `cursor`, or with partitions
    /// `cursor@<partition>` per partition.
    let state: JSONObject
    /// A full sync reads everything: its largest cursor value replaces the saved one, lower
    /// or not, so one bad value (`2099-12-31`) does not hold every later incremental sync.
    let full: Bool
    let parents: (any ParentRecords)?
    let sourceID: String
    let readFingerprint: String
    /// Pages and cursors requested in this attempt (in this partition), to catch a pagination cycle.
    let visited = VisitedSet()
    /// The pages read so far (and those the checkpoint carries), to catch an upstream serving one again.
    let seenPages = SeenPages()
    /// The JSON Lines answer being read, between its pages.
    let lines = LineStreamSlot()
    /// The parent source's id, once looked up.
    private let parentID = ParentID()
    private final class ParentID: Sendable {
        let value = Mutex<String?>(nil)
    }

    init(config: HTTPJSONConfig, client: UpstreamClient, gate: (any RequestGate)?, credential: (any CredentialSupplier)? = nil,
         state: JSONObject, full: Bool = false, parents: (any ParentRecords)? = nil, sourceID: String = "") {
        self.credential = credential
        self.config = config
        self.client = client
        self.gate = gate
        self.state = state
        self.full = full
        self.parents = parents
        self.sourceID = sourceID
        readFingerprint = config.readFingerprint
    }

    /// Where one read happens: the whole source, or one partition of a child stream.
    struct Scope {
        /// The partition's placeholder values (their text); empty without partitions.
        var values: [String: JSONValue] = [:]
        /// The partition's values as key parts, in name order (a number stays a number).
        var parts: [RecordKey.Part] = []
        /// The parent record's key (where the walk over the parents continues).
        var parentKey: String?
        /// The end of the window of a closed range (`end_param`, `{until}`): when the sync
        /// started, the same for every partition.
        var until: Int64?

        /// The partition's identity: its values as a record key (`acc_7`, `[4711,"eu"]`).
        var id: String? { parts.isEmpty ? nil : RecordKey.encode(parts) }
        var cursorStateKey: String { id.map { "cursor@" + $0 } ?? "cursor" }

        var json: JSONValue {
            .object([
                "values": .object(values), "parent": parentKey.map(JSONValue.string) ?? .null,
                "parts": .array(parts.map { part in
                    switch part {
                    case .string(let text): .array([.string("s"), .string(text)])
                    case .number(let text): .array([.string("n"), .string(text)])
                    }
                }),
            ])
        }

        init() {}

        init(parts: [(name: String, part: RecordKey.Part)], parentKey: String) {
            for (name, part) in parts {
                switch part {
                case .string(let text), .number(let text): values[name] = .string(text)
                }
            }
            self.parts = parts.map(\.part)
            self.parentKey = parentKey
        }

        /// A scope as a checkpoint carries it; `nil` for anything that does not read back.
        init?(checkpoint value: JSONValue?, order: [String]) {
            guard let o = value?.objectValue, let parent = o["parent"]?.stringValue, let raw = o["parts"]?.arrayValue, raw.count == order.count else { return nil }
            var parts: [(String, RecordKey.Part)] = []
            for (name, item) in zip(order, raw) {
                guard let pair = item.arrayValue, pair.count == 2, let kind = pair[0].stringValue, let text = pair[1].stringValue else { return nil }
                switch kind {
                case "s": parts.append((name, .string(text)))
                case "n" where ExactNumber(text) != nil: parts.append((name, .number(text)))
                default: return nil
                }
            }
            self.init(parts: parts, parentKey: parent)
        }
    }

    /// The parser of a scope's pages: in a child stream whose keys are scoped, every key
    /// starts with the partition's values (two parents' children never share a key).
    func parser(_ scope: Scope, firstLine: Int = 0) -> PageParser {
        var parser = PageParser(config: config)
        if config.partitions?.scopeKeys == true { parser.keyPrefix = scope.parts }
        parser.firstLine = firstLine
        return parser
    }

    /// Now, in milliseconds since 1970.
    static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// The saved cursor of a scope (a full sync that read no cursor value saved `null`).
    func savedCursor(_ scope: Scope) -> JSONValue? { state[scope.cursorStateKey].flatMap { $0.isNull ? nil : $0 } }

    func readPage(_ request: PageRequest) async throws -> SourcePage {
        guard let partitions = config.partitions else {
            return try await readPage(request, checkpoint: request.checkpoint?.objectValue, scope: Scope())
        }
        // A child stream: the checkpoint is `{read, partition, inner}`, `inner` the checkpoint
        // of the read inside the partition (`null` at its start).
        var outer = request.checkpoint?.objectValue
        if outer?["read"]?.stringValue != readFingerprint { outer = nil }
        let order = partitions.values.map(\.name)
        var skipped: [RecordError] = []
        var scope: Scope
        if let saved = Scope(checkpoint: outer?["partition"], order: order) {
            scope = saved
        } else {
            outer = nil
            guard let first = try await nextPartition(after: nil, partitions, request: request, skipped: &skipped) else {
                return SourcePage(records: [], recordErrors: skipped, bytesRead: 0, next: nil)
            }
            scope = first
        }
        scope.until = outer?["until"]?.exactNumber?.truncatedInteger(scale: 0) ?? Self.now()
        let inner = outer?["inner"]?.objectValue
        if inner == nil || request.pageInAttempt == 1 {
            // A partition starts afresh: pages and cursors of another partition are not repeats.
            seenPages.reset()
            visited.reset()
        }
        var page = try await readPage(request, checkpoint: inner, scope: scope)
        page.recordErrors = skipped + page.recordErrors
        let until = JSONValue.number(Double(scope.until ?? 0))
        if let next = page.next {
            page.next = .object(["read": .string(readFingerprint), "partition": scope.json, "inner": next, "until": until])
        } else if let following = try await nextPartition(after: scope.parentKey, partitions, request: request, skipped: &page.recordErrors) {
            page.next = .object(["read": .string(readFingerprint), "partition": following.json, "inner": .null, "until": until])
        }
        return page
    }

    /// The partition of the first live parent record after `after` that holds every value.
    private func nextPartition(after: String?, _ partitions: HTTPJSONConfig.Partitions, request: PageRequest,
                               skipped: inout [RecordError]) async throws -> Scope? {
        guard let parents else { throw SyncError(.configInvalid, "partitions need the record store, which this node does not give its sources", retryable: false) }
        let parent: String
        if let known = parentID.value.withLock({ $0 }) {
            parent = known
        } else {
            guard let found = try await parents.sourceID(of: partitions.fromSource) else {
                throw SyncError(.configInvalid, "partitions.from_source names no source (\(partitions.fromSource.prefix(200)))", retryable: false)
            }
            guard found != sourceID else { throw SyncError(.configInvalid, "partitions.from_source names this source itself", retryable: false) }
            parentID.value.withLock { $0 = found }
            parent = found
        }
        var cursor = after
        while true {
            let batch = try await parents.liveRecords(sourceID: parent, after: cursor, limit: 64)
            for record in batch {
                cursor = record.key
                var parts: [(name: String, part: RecordKey.Part)] = []
                record.data.withUnsafeBufferPointer { buffer in
                    guard let found = try? JSONScanner.locate(partitions.values.map(\.path), in: buffer) else { return }
                    for (value, at) in zip(partitions.values, found) {
                        guard let at else { continue }
                        switch at.kind {
                        case .string:
                            if let text = JSONScanner.string(at, in: buffer, strict: true), !text.isEmpty, !text.utf8.contains(0) { parts.append((value.name, .string(text))) }
                        case .number:
                            if let canonical = ExactNumber.canonicalText(of: JSONScanner.literal(at, in: buffer)[...]) { parts.append((value.name, .number(canonical))) }
                        default: break
                        }
                    }
                }
                guard parts.count == partitions.values.count else {
                    skipped.append(RecordError(page: request.pageNumber, recordKey: nil,
                                               message: "parent record \(record.key.prefix(200)) has no string or number at every partition value (\(partitions.values.map(\.path.description).joined(separator: ", "))): skipped"))
                    if skipped.count > 1000 { skipped.removeFirst() }
                    continue
                }
                return Scope(parts: parts, parentKey: record.key)
            }
            if batch.count < 64 { return nil }
        }
    }

    /// One page of one scope's read.
    func readPage(_ request: PageRequest, checkpoint startCheckpoint: JSONObject?, scope: Scope) async throws -> SourcePage {
        var checkpoint = startCheckpoint
        if let read = checkpoint?["read"]?.stringValue, read != readFingerprint {
            // Started under another config: keep what the sync filters by, read from the start.
            checkpoint = checkpoint?.filter { $0.key == "since" || $0.key == "max_cursor" }
        }
        let saved = savedCursor(scope)
        let since = checkpoint == nil ? (full ? nil : saved) : checkpoint?["since"].flatMap { $0.isNull ? nil : $0 }
        // A full sync's running maximum starts from nothing; an incremental one's from the saved cursor.
        let previousMax = checkpoint == nil ? (full ? nil : saved) : checkpoint?["max_cursor"].flatMap { $0.isNull ? nil : $0 }
        // The end of the window a closed-range upstream is asked for: when the sync started.
        let until = checkpoint?["until"]?.exactNumber?.truncatedInteger(scale: 0) ?? scope.until ?? Self.now()
        let prepared = try pageRequest(checkpoint: checkpoint, since: since, until: until, scope: scope)
        let url = prepared.url
        if request.pageInAttempt == 1 || startCheckpoint == nil { seenPages.seed(checkpoint?["seen"]) }
        visited.insert(url.absoluteString)
        let currentCursor = checkpoint?["cursor"]?.stringValue
        if let currentCursor { visited.insert("cursor:" + currentCursor) }
        if config.format == .jsonl {
            var secrets: [String] = []
            do {
                var page = try await readLines(request, prepared: prepared, checkpoint: checkpoint, since: since, previousMax: previousMax,
                                               currentCursor: currentCursor, until: until, scope: scope, saved: saved, sentSecrets: &secrets)
                if !secrets.isEmpty { page.next = page.next.map { SecretRedaction.mask($0, values: secrets) } }
                return page
            } catch var error as SyncError where !secrets.isEmpty {
                error.message = SecretRedaction.mask(error.message, values: secrets)
                throw error
            }
        }
        let response = try await client.get(url, body: prepared.body, config: config, gate: gate, credential: credential)
        try Task.checkCancellation()
        // What the upstream echoes of the credential's secrets (a key in its next links, in
        // a bad URL an error quotes) is masked wherever it would be stored or shown, whatever
        // the parameter is called; a masked key in a next link of the source's origin is set
        // again from the credential when that page is asked for.
        do {
            var page = try readPage(request, response: response, url: url, checkpoint: checkpoint, since: since,
                                    previousMax: previousMax, currentCursor: currentCursor, until: until, scope: scope, saved: saved)
            if !response.sentSecrets.isEmpty { page.next = page.next.map { SecretRedaction.mask($0, values: response.sentSecrets) } }
            return page
        } catch var error as SyncError where !response.sentSecrets.isEmpty {
            error.message = SecretRedaction.mask(error.message, values: response.sentSecrets)
            throw error
        }
    }

    /// The pieces of a JSON Lines answer in which the engine gets it: about this many bytes of whole lines.
    static let linePieceBytes = 4 << 20

    /// The next piece of a JSON Lines answer as a page: one of several while the answer goes
    /// on (its checkpoint names the lines committed), the answer's last piece as its page
    /// (whose checkpoint names the next request, as any page's does).
    private func readLines(_ request: PageRequest, prepared: PreparedRequest, checkpoint: JSONObject?, since: JSONValue?, previousMax: JSONValue?,
                           currentCursor: String?, until: Int64, scope: Scope, saved: JSONValue?, sentSecrets: inout [String]) async throws -> SourcePage {
        let committed = checkpoint?["lines"]?.intValue ?? 0
        var open: OpenLines
        if let live = lines.open, live.url == prepared.url.absoluteString, live.lines == committed {
            open = live
        } else {
            lines.open = nil
            let response = try await client.get(prepared.url, body: prepared.body, stream: true, config: config, gate: gate, credential: credential)
            try Task.checkCancellation()
            open = OpenLines(url: prepared.url.absoluteString, response: response)
            sentSecrets = response.sentSecrets
            try await open.skip(committed, timeout: config.timeoutSeconds)
        }
        sentSecrets = open.response.sentSecrets
        let piece = try await open.nextPiece(target: Self.linePieceBytes, maxLine: config.maxPageBytes, timeout: config.timeoutSeconds)
        let response = open.response
        var parsed = try parser(scope, firstLine: open.lines - piece.lineEnds).parse(piece.bytes, pageNumber: request.pageNumber, status: response.status)
        // What this answer has given so far, over its pieces.
        let elements = (checkpoint?["elements"]?.intValue ?? 0).addingSaturated(parsed.elementCount)
        let firstKey = checkpoint?["first_key"]?.stringValue ?? parsed.records.first?.key
        let lastKey = parsed.records.last?.key ?? checkpoint?["last_key"]?.stringValue
        let lastValue = parsed.paginationValue ?? checkpoint?["last_value"]?.stringValue
        var runningMax = previousMax
        if let pageMax = parsed.maxCursor { runningMax = runningMax.map { CursorOrder.max($0, pageMax, time: timeCursor) } ?? pageMax }
        if !piece.end {
            lines.open = open
            var next = checkpoint ?? [:]
            next["read"] = .string(readFingerprint)
            next["since"] = since ?? .null
            if usesUntil { next["until"] = .number(Double(until)) }
            next["lines"] = .number(Double(open.lines))
            next["elements"] = .number(Double(elements))
            next["max_cursor"] = runningMax ?? .null
            next["first_key"] = firstKey.map(JSONValue.string) ?? .null
            next["last_key"] = lastKey.map(JSONValue.string) ?? .null
            next["last_value"] = lastValue.map(JSONValue.string) ?? .null
            return SourcePage(records: parsed.records, recordErrors: parsed.recordErrors, bytesRead: piece.bytes.count, next: .object(next))
        }
        lines.open = nil
        // The answer's end: the page rules see the whole answer (its element count, its last
        // record, its first and last keys and size as its signature).
        parsed.elementCount = elements
        parsed.paginationValue = lastValue
        parsed.maxCursor = runningMax
        let fingerprint = Array("\(firstKey ?? "")\u{0}\(lastKey ?? "")\u{0}\(elements)\u{0}\(open.bytesRead)".utf8)
        let keys = [firstKey, lastKey].compactMap { $0 }
        return try readPage(request, response: response, url: prepared.url, checkpoint: checkpoint, since: since, previousMax: previousMax,
                            currentCursor: currentCursor, until: until, scope: scope, saved: saved,
                            parsedPiece: parsed, signature: PageSignature(body: fingerprint, keys: keys), bytesRead: piece.bytes.count)
    }

    /// The page from the upstream's answer (or, for a JSON Lines answer read in pieces, from
    /// its last piece: `parsedPiece`, with the answer's `signature`).
    private func readPage(_ request: PageRequest, response: UpstreamClient.Response, url: URL, checkpoint: JSONObject?, since: JSONValue?,
                          previousMax: JSONValue?, currentCursor: String?, until: Int64, scope: Scope, saved savedCursor: JSONValue?,
                          parsedPiece: PageParser.Parsed? = nil, signature pieceSignature: PageSignature? = nil, bytesRead: Int? = nil) throws -> SourcePage {
        let parsed = try parsedPiece ?? parser(scope).parse(response.body, pageNumber: request.pageNumber, status: response.status)

        func cycle(_ what: String) -> SyncError {
            SyncErrorFactory.invalidResponse("the upstream's next \(what) was already read in this sync (a pagination loop)", status: response.status)
        }
        // Whatever names the next page (a page number, an offset, a link or cursor that only
        // counts up), a page that repeats one read before in this attempt is a loop: an
        // upstream ignoring the page parameter, answering past the end with its last page, or
        // alternating between pages.
        let signature = pieceSignature
            ?? PageSignature(body: response.body, keys: parsed.records.isEmpty ? [] : [parsed.records[0].key, parsed.records[parsed.records.count - 1].key])
        if let repeated = seenPages.record(signature, number: request.pageNumber) {
            throw SyncErrorFactory.invalidResponse(
                "page \(request.pageNumber) repeats \(repeated): the upstream ignores the pagination parameter or serves a page again", status: response.status)
        }
        var next: JSONObject? = ["since": since ?? .null, "read": .string(readFingerprint)]
        if usesUntil { next?["until"] = .number(Double(until)) }
        // The records read in this sync so far, for total_path.
        let count = (checkpoint?["count"]?.intValue ?? 0).addingSaturated(parsed.elementCount)
        if config.stop.totalPath != nil { next?["count"] = .number(Double(count)) }
        // Pages of this read (of this partition, in a child stream), for max_pages.
        let pagesRead = (checkpoint?["pages"]?.intValue ?? 0).addingSaturated(1)
        if config.stop.maxPages != nil { next?["pages"] = .number(Double(pagesRead)) }
        let stop = config.stop
        let stopped = parsed.stopMatched || (parsed.total.map { count >= $0 } ?? false)
            || (stop.maxPages.map { pagesRead >= $0 } ?? false) || (stop.onEmptyPage && parsed.elementCount == 0)
        switch config.pagination {
        case _ where stopped:
            next = nil
        case .none:
            next = nil
        case .nextURL, .linkHeader:
            var target: URL?
            // A relative link is resolved against the URL that served the page (after redirects).
            // A named next page that is not a usable URL is the upstream's error, never "no next
            // page" (that would end a full sync early and delete what it did not reach).
            func resolve(_ text: some StringProtocol, _ what: String) throws -> URL {
                guard let resolved = HTTPURL.parse(String(text), relativeTo: response.url) else {
                    throw SyncErrorFactory.invalidResponse("\(what) \"\(SecretRedaction.redactText(String(text.prefix(200))))\" is not an http(s) URL with a port in 1...65535", status: response.status)
                }
                return resolved
            }
            if case .nextURL = config.pagination, let value = parsed.paginationValue {
                target = try resolve(value, "the next-page URL")
            } else if case .linkHeader = config.pagination {
                // The raw field values: `headers[canonicalForm:]` splits at every comma, inside `<…>` too.
                let link = response.headers["link"]
                let named: Substring?
                do {
                    named = try LinkHeader.nextTarget(link.isEmpty ? nil : link.joined(separator: ", "))
                } catch {
                    throw SyncErrorFactory.invalidResponse("\(error)", status: response.status)
                }
                target = try named.map { try resolve($0, "the Link header's next URL") }
            }
            if let target, target.absoluteString != url.absoluteString {
                guard !visited.contains(target.absoluteString) else { throw cycle("page URL") }
                next?["url"] = .string(target.absoluteString)
            } else {
                // No next page, or a page that names itself as the next: this was the last page.
                next = nil
            }
        case .cursor:
            // By bytes: a cursor canonically equivalent to the one sent is still another cursor.
            if let value = parsed.paginationValue, !(currentCursor.map(value.sameBytes) ?? false) {
                guard !visited.contains("cursor:" + value) else { throw cycle("cursor") }
                next?["cursor"] = .string(value)
            } else {
                // No cursor, or the cursor just sent again (on an empty page or not): the end.
                next = nil
            }
        case .page(_, _, _, let start):
            let current = checkpoint?["page"]?.intValue ?? start
            if parsed.elementCount > 0 { next?["page"] = .number(Double(current + 1)) } else { next = nil }
        case .offset:
            let current = checkpoint?["offset"]?.intValue ?? 0
            if parsed.elementCount > 0 { next?["offset"] = .number(Double(current + parsed.elementCount)) } else { next = nil }
        }

        var runningMax = previousMax
        if let pageMax = parsed.maxCursor, runningMax == nil || CursorOrder.isGreater(pageMax, than: runningMax!, time: timeCursor) {
            runningMax = pageMax
        }
        next?["max_cursor"] = runningMax ?? .null
        if next != nil { next?["seen"] = seenPages.carriedJSON }
        var state: JSONObject?
        let cursorMayMove = next == nil || config.incremental?.sorted == true
        if full, config.incremental != nil, cursorMayMove {
            // What this full sync read is the truth, lower than the saved cursor or not; a
            // completed full sync that read no cursor value leaves none.
            if runningMax != nil || next == nil { state = [scope.cursorStateKey: runningMax ?? .null] }
        } else if cursorMayMove, let runningMax, savedCursor == nil || CursorOrder.isGreater(runningMax, than: savedCursor!, time: timeCursor) {
            state = [scope.cursorStateKey: runningMax]
        }
        return SourcePage(records: parsed.records, recordErrors: parsed.recordErrors, bytesRead: bytesRead ?? response.body.count,
                          next: next.map(JSONValue.object), sourceState: state)
    }

    /// Whether the incremental cursor is a time (`cursor_format`): compared and sent as one.
    var timeCursor: Bool { config.incremental?.format != nil }

    /// Whether requests carry the sync's start time (`end_param`, `{until}`).
    var usesUntil: Bool { config.incremental?.format != nil && (config.incremental?.endParam != nil || config.usesPlaceholder("until")) }

    struct PreparedRequest {
        var url: URL
        /// A POST's JSON body.
        var body: [UInt8]?
    }

    /// The values the placeholders and parameters of this page's request take.
    func placeholderValues(checkpoint: JSONObject?, since: JSONValue?, until: Int64, scope: Scope) throws -> [String: JSONValue] {
        var values = scope.values
        if let incremental = config.incremental {
            // A saved cursor, less the lookback; or the configured start.
            if let cursor = since ?? incremental.start {
                if let format = incremental.format {
                    guard let ms = CursorTime.milliseconds(of: cursor) else {
                        throw SyncError(.configInvalid, "the saved cursor \(JSONValue.scalarText(cursor)?.prefix(64) ?? "") is not a time, and cursor_format is set; reset the source's state", retryable: false)
                    }
                    let back = since == nil ? 0 : Int64(incremental.lookbackSeconds) * 1000
                    values["since"] = CursorTime.format(ms - back, as: format)
                } else {
                    values["since"] = cursor
                }
            }
            if let format = incremental.format { values["until"] = CursorTime.format(until, as: format) }
        }
        switch config.pagination {
        case .cursor:
            if let cursor = checkpoint?["cursor"]?.stringValue { values["cursor"] = .string(cursor) }
        case .page(_, _, _, let start):
            values["page"] = .number(Double(checkpoint?["page"]?.intValue ?? start))
        case .offset:
            values["offset"] = .number(Double(checkpoint?["offset"]?.intValue ?? 0))
        case .none, .nextURL, .linkHeader:
            break
        }
        return values
    }

    /// The request for the page the checkpoint names.
    func pageRequest(checkpoint: JSONObject?, since: JSONValue?, until: Int64, scope: Scope) throws -> PreparedRequest {
        let values = try placeholderValues(checkpoint: checkpoint, since: since, until: until, scope: scope)
        let known = config.placeholderNames
        var body: [UInt8]?
        if config.post {
            guard let rendered = RequestTemplate.renderBody(config.body ?? .object([:]), values: values, known: known) else {
                throw SyncError(.configInvalid, "the body template cannot be filled", retryable: false)
            }
            body = JSONWriter.bytes(rendered)
        }
        if let saved = checkpoint?["url"]?.stringValue {
            guard let url = URL(string: saved) else { throw SyncError(.internalError, "unreadable checkpoint URL", retryable: false) }
            return PreparedRequest(url: url, body: body)
        }
        func missing(_ what: String) -> SyncError {
            SyncError(.configInvalid, "\(what) names a placeholder that has no value for this page", retryable: false)
        }
        var params: [(String, String)] = []
        for (name, value) in config.query {
            if let whole = RequestTemplate.whole(value, known: known) {
                if let v = values[whole], let text = JSONValue.scalarText(v) { params.append((name, text)) }
            } else {
                guard let text = RequestTemplate.render(value, values: values, known: known) else { throw missing("query.\(name)") }
                params.append((name, text))
            }
        }
        if let incremental = config.incremental {
            if let param = incremental.param, let since = values["since"], let text = JSONValue.scalarText(since) { params.append((param, text)) }
            if let endParam = incremental.endParam, let until = values["until"], let text = JSONValue.scalarText(until) { params.append((endParam, text)) }
        }
        switch config.pagination {
        case .cursor(let param, _, _):
            if let param, let cursor = values["cursor"]?.stringValue { params.append((param, cursor)) }
        case .page(let param, let sizeParam, let size, _):
            if let param, let page = values["page"].flatMap(JSONValue.scalarText) { params.append((param, page)) }
            if let sizeParam, let size { params.append((sizeParam, String(size))) }
        case .offset(let param, let limitParam, let limit):
            if let param, let offset = values["offset"].flatMap(JSONValue.scalarText) { params.append((param, offset)) }
            if let limitParam, let limit { params.append((limitParam, String(limit))) }
        case .none, .nextURL, .linkHeader:
            break
        }
        var base = config.url
        let text = base.absoluteString
        if text.contains("%7B") {
            var rendered = text
            for name in known where rendered.contains("%7B\(name)%7D") {
                guard let value = values[name], let valueText = JSONValue.scalarText(value) else { throw missing("url") }
                rendered = rendered.replacingOccurrences(of: "%7B\(name)%7D", with: RequestTemplate.urlEncode(valueText))
            }
            guard let url = HTTPURL.parse(rendered) else { throw missing("url") }
            base = url
        }
        return PreparedRequest(url: QueryString.appending(params, to: base), body: body)
    }
}

/// What a page is compared on with the pages before it: its bytes, and its first and last
/// record keys (compared as bytes: a page whose middle changed is still the same page),
/// each as a length and a 64-bit hash.
struct PageSignature: Sendable {
    var bodyLength: Int
    var bodyHash: Int64
    var keyCount: Int
    var keysHash: Int64

    init(body: [UInt8], keys: some Sequence<String>) {
        bodyLength = body.count
        bodyHash = body.withUnsafeBytes(PageHash.of)
        var bytes: [UInt8] = []
        var count = 0
        for key in keys {
            count += 1
            // Length-prefixed: ["ab", "c"] and ["a", "bc"] differ.
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: key.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: key.utf8)
        }
        keyCount = count
        keysHash = bytes.withUnsafeBytes(PageHash.of)
    }

    init(bodyLength: Int, bodyHash: Int64, keyCount: Int, keysHash: Int64) {
        self.bodyLength = bodyLength
        self.bodyHash = bodyHash
        self.keyCount = keyCount
        self.keysHash = keysHash
    }

    /// A page's signature as a checkpoint carries it: `"page:length:hash:count:hash"`. Read
    /// back from a stored checkpoint, so anything that does not parse is dropped.
    struct Carried: Sendable {
        var page: Int
        var signature: PageSignature
        var json: JSONValue {
            .string("\(page):\(signature.bodyLength):\(signature.bodyHash):\(signature.keyCount):\(signature.keysHash)")
        }
        init(page: Int, signature: PageSignature) {
            self.page = page
            self.signature = signature
        }
        init?(_ value: JSONValue) {
            guard let text = value.stringValue, text.utf8.count <= 100 else { return nil }
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 5, let page = Int(parts[0]), let length = Int(parts[1]), let bodyHash = Int64(parts[2]),
                  let count = Int(parts[3]), let keysHash = Int64(parts[4]) else { return nil }
            self.init(page: page, signature: PageSignature(bodyLength: length, bodyHash: bodyHash, keyCount: count, keysHash: keysHash))
        }
    }
}

/// A deterministic 64-bit hash for comparing pages, eight bytes a step: the signature of
/// every page is computed, and FNV-1a a byte at a time (``ContentHash``, which stored record
/// hashes keep) cost about 5 % of an ingest on 240 KB pages. The same on every node, so a
/// checkpoint's signatures mean the same wherever the next attempt runs.
enum PageHash {
    static func of(_ bytes: UnsafeRawBufferPointer) -> Int64 {
        let n = bytes.count
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(n)
        var i = 0
        while i + 8 <= n {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            h = (h ^ word) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return Int64(bitPattern: h)
    }
}

/// The signatures of the pages a sync has read, each with the number of the page that first
/// had it: a page that repeats any of them (the one before it, or one further back: an
/// upstream alternating between two pages) is a loop. Bounded like ``VisitedSet``. The last
/// ``carried`` ride in the checkpoint (`seen`), so an attempt that starts from it (a sync
/// handed back by a slow rate limit reads one page per attempt) still knows them.
final class SeenPages: Sendable {
    static let limit = 100_000
    static let carried = 16
    private struct BodyKey: Hashable { var length: Int; var hash: Int64 }
    private struct KeysKey: Hashable { var hash: Int64 }
    private struct State {
        var bodies: [BodyKey: Int] = [:]
        var keys: [KeysKey: Int] = [:]
        var recent: [PageSignature.Carried] = []
    }
    private let state = Mutex(State())

    /// Records `page` as page `number`; says which earlier page it repeats and how, if it does.
    func record(_ page: PageSignature, number: Int) -> String? {
        state.withLock { s in
            if s.bodies.count >= Self.limit { s = State() }
            let body = BodyKey(length: page.bodyLength, hash: page.bodyHash)
            if let earlier = s.bodies[body] { return "page \(earlier): the same bytes" }
            let keys = KeysKey(hash: page.keysHash)
            if page.keyCount > 0, let earlier = s.keys[keys] { return "page \(earlier): the same first and last record keys" }
            Self.insert(&s, page, number: number)
            return nil
        }
    }

    private static func insert(_ s: inout State, _ page: PageSignature, number: Int) {
        s.bodies[BodyKey(length: page.bodyLength, hash: page.bodyHash)] = number
        if page.keyCount > 0 { s.keys[KeysKey(hash: page.keysHash)] = number }
        s.recent.append(PageSignature.Carried(page: number, signature: page))
        if s.recent.count > carried { s.recent.removeFirst(s.recent.count - carried) }
    }

    /// Forgets every page (a new partition of a child stream starts).
    func reset() { state.withLock { $0 = State() } }

    /// The pages a checkpoint carries, remembered before this attempt reads its first page.
    func seed(_ value: JSONValue?) {
        guard let items = value?.arrayValue else { return }
        state.withLock { s in
            for item in items.prefix(Self.carried) {
                if let carried = PageSignature.Carried(item) { Self.insert(&s, carried.signature, number: carried.page) }
            }
        }
    }

    /// The last pages read, for the checkpoint.
    var carriedJSON: JSONValue { .array(state.withLock { $0.recent.map(\.json) }) }
}

/// What one attempt has requested, as hashes: a bounded set that tells a pagination cycle
/// (`/p → /q → /p`, a cursor seen before) from progress. Past ``limit`` entries it starts
/// afresh, so a cycle longer than that is caught one lap later rather than never.
final class VisitedSet: Sendable {
    static let limit = 100_000
    private let seen = Mutex<Set<Int>>([])

    func insert(_ value: String) {
        seen.withLock { set in
            if set.count >= Self.limit { set.removeAll(keepingCapacity: true) }
            set.insert(BytewiseString(value).hashValue)
        }
    }

    func contains(_ value: String) -> Bool { seen.withLock { $0.contains(BytewiseString(value).hashValue) } }

    func reset() { seen.withLock { $0.removeAll(keepingCapacity: true) } }
}

/// Query strings with RFC 3986 unreserved characters only (so `+` in a timestamp stays a plus).
enum QueryString {
    static let unreserved: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))

    static func encode(_ s: String) -> String {
        var out = ""
        for byte in s.utf8 {
            if unreserved.contains(byte) { out.unicodeScalars.append(Unicode.Scalar(byte)) } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    /// `url` with `params` set: a parameter already in the URL is replaced.
    static func appending(_ params: [(String, String)], to url: URL) -> URL {
        guard !params.isEmpty, var components = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return url }
        let names = Set(params.map { encode($0.0) })
        var items = (components.percentEncodedQuery ?? "").split(separator: "&").map(String.init).filter { item in
            !names.contains(String(item.prefix { $0 != "=" }))
        }
        items += params.map { "\(encode($0.0))=\(encode($0.1))" }
        components.percentEncodedQuery = items.joined(separator: "&")
        return components.url ?? url
    }
}
