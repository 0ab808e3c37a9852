import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import SyncCore

/// A deterministic upstream for tests: items in every pagination style, changes between
/// syncs, and faults on demand. A real HTTP server on loopback (Hummingbird), so the
/// http-json source is tested over real sockets.
///
/// Routes (all filter with `updated_since=…` (items with `updated_at >= …`) and page by id):
/// `/none` → `{"rows": [...]}`; `/next?size=N&after=ID[&absolute=1]` → `{"rows", "next_url"}`;
/// `/link?size=N&after=ID` → a bare array with `Link: <…>; rel="next"`;
/// `/cursor?limit=N&cursor=C` → `{"data", "meta": {"next_cursor"}}`;
/// `/page?page=P&per_page=N` (from 1) → `{"items"}`; `/offset?offset=O&limit=N` → `{"results"}`.
public final class FixtureUpstream: Sendable {
    public struct Item: Sendable, Equatable {
        public var id: Int
        public var name: String
        public var updatedAt: String
        public var json: String {
            #"{"id":\#(id),"name":"\#(name)","updated_at":"\#(updatedAt)","payload":"\#(String(repeating: "p", count: 40))"}"#
        }
    }

    /// A fault served instead of the normal response.
    public enum Fault: Sendable {
        case status(Int, retryAfter: String? = nil)
        /// The response starts, then the connection is cut.
        case reset
        /// No answer for this long.
        case hang(seconds: Double)
        case malformedJSON
        case htmlBody
        case noRecordsArray
        case hugePage(bytes: Int)
        /// This JSON body, as is.
        case body(String)
        /// A redirect (`status`, 302 by default) to `location`.
        case redirect(to: String, status: Int = 302)
    }

    /// A scripted answer for `/s/…` routes (see ``script(_:)``).
    public struct Scripted: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: String
        /// Send the body one byte at a time with this pause between bytes (a slow upstream).
        public var trickle: Duration?
        /// Wait this long before answering.
        public var delay: Duration?
        /// The body as bytes (instead of `body`), e.g. a gzip stream.
        public var bytes: [UInt8]?
        /// Send this many bytes of the body, then cut the connection (an answer that breaks off).
        public var cutAfter: Int?
        public init(status: Int = 200, headers: [(String, String)] = [("Content-Type", "application/json")], body: String,
                    trickle: Duration? = nil, delay: Duration? = nil) {
            self.status = status
            self.headers = headers
            self.body = body
            self.trickle = trickle
            self.delay = delay
        }
        public static func json(_ body: String) -> Scripted { Scripted(body: body) }
    }

    /// A request as a script sees it: the path under `/s`, the decoded query, the headers.
    public struct ScriptRequest: Sendable {
        public var path: String
        public var query: [String: String]
        public var rawQuery: String
        public var headers: [String: String]
        public var method: String = "GET"
        /// A POST's body.
        public var body: [UInt8] = []
        /// The body parsed as JSON (`null` when it is not JSON).
        public var json: JSONValue { (try? parseJSON(body)) ?? .null }
    }

    public typealias Script = @Sendable (ScriptRequest) -> Scripted

    /// Answers every request under `/s/` with `script` (the faults still come first).
    public func script(_ script: @escaping Script) { scriptHandler.withLock { $0 = script } }

    public struct LoggedRequest: Sendable {
        public var path: String
        public var query: String
        public var at: ContinuousClock.Instant
        public var headers: [String: String]
        /// The request body (webhook POSTs to `/hooks/…`; empty for GETs).
        public var body: [UInt8] = []
        public var method: String = "GET"
    }

    struct State {
        var items: [Int: Item] = [:]
        var version = 0
        var faults: [(path: String, fault: Fault, remaining: Int, skip: Int)] = []
        var requests: [LoggedRequest] = []
        var delay: Double = 0
    }

    /// Every normal response waits this long first (for tests that kill a sync mid-way).
    public func setDelay(seconds: Double) { state.withLock { $0.delay = seconds } }

    let state = Mutex(State())
    private let scriptHandler = Mutex<Script?>(nil)
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let portValue = Mutex(0)
    public var port: Int { portValue.withLock { $0 } }
    /// The loopback address it listens on (127.0.0.1 unless given: 127.0.0.2 is another origin).
    public let host: String
    public var baseURL: String { "http://\(host):\(port)" }

    public init(items: Int = 0, host: String = "127.0.0.1") {
        self.host = host
        insert(count: items)
    }

    // MARK: Data

    /// Adds `count` items with the next ids.
    public func insert(count: Int) {
        state.withLock { s in
            let start = (s.items.keys.max() ?? 0) + 1
            for id in start..<(start + count) {
                s.version += 1
                s.items[id] = Item(id: id, name: "item-\(id)", updatedAt: Self.stamp(s.version))
            }
        }
    }

    /// Renames the given items and moves their `updated_at` forward.
    public func update(ids: [Int]) {
        state.withLock { s in
            for id in ids where s.items[id] != nil {
                s.version += 1
                s.items[id]!.name += "-v\(s.version)"
                s.items[id]!.updatedAt = Self.stamp(s.version)
            }
        }
    }

    public func delete(ids: [Int]) {
        state.withLock { s in for id in ids { s.items.removeValue(forKey: id) } }
    }

    public var items: [Item] { state.withLock { $0.items.values.sorted { $0.id < $1.id } } }

    /// A fixed-width RFC 3339 timestamp that grows with every change.
    static func stamp(_ version: Int) -> String {
        Timestamp.format(Date(timeIntervalSince1970: 1_780_000_000 + Double(version)))
    }

    // MARK: Faults and the request log

    /// Serves `fault` for `times` requests whose path is `path`, after letting `after` of them pass.
    public func inject(_ fault: Fault, path: String, times: Int = 1, after: Int = 0) {
        state.withLock { $0.faults.append((path, fault, times, after)) }
    }

    public var requests: [LoggedRequest] { state.withLock { $0.requests } }
    public func requests(path: String) -> [LoggedRequest] { requests.filter { $0.path == path } }
    public func clearLog() { state.withLock { $0.requests.removeAll() } }
    /// Drops every fault not yet served: the upstream or receiver answers normally again.
    public func clearFaults() { state.withLock { $0.faults.removeAll() } }

    // MARK: Server

    /// Starts listening on a free loopback port.
    public func start() async throws {
        let router = Router()
        for path in ["/none", "/next", "/link", "/cursor", "/page", "/offset"] {
            router.get(RouterPath(path)) { request, _ in try await self.respond(path: path, request: request) }
        }
        router.get("/lines") { request, _ in self.respondLines(request) }
        router.get("/s/**") { request, _ in try await self.respondScripted(request) }
        router.post("/s/**") { request, _ in try await self.respondScripted(request) }
        // A webhook receiver: logs each POST (faults injected on path "/hooks" answer instead).
        router.post("/hooks/**") { request, _ in try await self.respondHook(request) }
        let (running, bound) = await startLoopback(router, host: host, label: "fixture")
        task.withLock { $0 = running }
        portValue.withLock { $0 = bound }
    }

    public func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        _ = try? await t?.value
    }

    func respond(path: String, request: Request) async throws -> Response {
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        // HTTP/1.1's Host travels as the :authority pseudo-header in HTTPTypes.
        if let authority = request.head.authority { headers["host"] = authority }
        if let fault = logAndTakeFault(LoggedRequest(path: path, query: request.uri.query ?? "", at: .now, headers: headers), faultPath: path) {
            return try await serve(fault)
        }
        let delay = state.withLock { $0.delay }
        if delay > 0 { try await Task.sleep(for: .milliseconds(Int(delay * 1000))) }
        return respondNormally(path: path, request: request)
    }

    /// Logs `request` and takes the next fault injected for `faultPath`, if any.
    func logAndTakeFault(_ request: LoggedRequest, faultPath: String) -> Fault? {
        state.withLock { s in
            s.requests.append(request)
            guard let i = s.faults.firstIndex(where: { $0.path == faultPath }) else { return nil }
            if s.faults[i].skip > 0 {
                s.faults[i].skip -= 1
                return nil
            }
            let f = s.faults[i].fault
            s.faults[i].remaining -= 1
            if s.faults[i].remaining <= 0 { s.faults.remove(at: i) }
            return f
        }
    }

    func respondHook(_ request: Request) async throws -> Response {
        var request = request
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let body = try await request.collectBody(upTo: 1 << 20)
        let logged = LoggedRequest(path: request.uri.path, query: request.uri.query ?? "", at: .now, headers: headers,
                                   body: Array(body.readableBytesView), method: "POST")
        if let fault = logAndTakeFault(logged, faultPath: "/hooks") { return try await serve(fault) }
        return Response(status: .noContent)
    }

    func respondNormally(path: String, request: Request) -> Response {
        let query = request.uri.queryParameters
        let since = query["updated_since"].map(String.init)
        let all = items.filter { since == nil || $0.updatedAt >= since! }
        func int(_ name: String, _ def: Int) -> Int { query[Substring(name)].flatMap { Int($0) } ?? def }
        func rows(_ items: ArraySlice<Item>) -> String { "[" + items.map(\.json).joined(separator: ",") + "]" }
        switch path {
        case "/none":
            return Self.json(#"{"rows":\#(rows(all[...]))}"#)
        case "/next", "/link":
            let size = int("size", 10)
            let after = int("after", 0)
            let page = all.filter { $0.id > after }.prefix(size)
            let more = all.contains { $0.id > (page.last?.id ?? Int.max) }
            var nextQuery = "size=\(size)&after=\(page.last?.id ?? after)"
            if let since { nextQuery += "&updated_since=\(Self.percent(since))" }
            if path == "/link" {
                var h = HTTPFields()
                if more { h[HTTPField.Name("Link")!] = #"<\#(baseURL)/link?\#(nextQuery)>; rel="next", <\#(baseURL)/link>; rel="first""# }
                return Self.json(rows(page), headers: h)
            }
            let base = query["absolute"] != nil ? baseURL : ""
            let next = more ? #""\#(base)/next?\#(nextQuery)\#(query["absolute"] != nil ? "&absolute=1" : "")""# : "null"
            return Self.json(#"{"rows":\#(rows(page)),"next_url":\#(next)}"#)
        case "/cursor":
            let limit = int("limit", 10)
            let after = query["cursor"].flatMap { Int($0.dropFirst()) } ?? 0
            let page = all.filter { $0.id > after }.prefix(limit)
            let more = all.contains { $0.id > (page.last?.id ?? Int.max) }
            return Self.json(#"{"data":\#(rows(page)),"meta":{"next_cursor":"\#(more ? "c\(page.last!.id)" : "")"}}"#)
        case "/page":
            let per = int("per_page", 10)
            let page = int("page", 1)
            return Self.json(#"{"items":\#(rows(all.dropFirst((page - 1) * per).prefix(per)))}"#)
        default:
            let offset = int("offset", 0)
            let limit = int("limit", 10)
            return Self.json(#"{"results":\#(rows(all.dropFirst(offset).prefix(limit)))}"#)
        }
    }

    /// `/lines?count=N&pad=P`: a JSON Lines export of `count` generated records, each with a
    /// `body` of `pad` characters, written as it is generated (a response of any size costs
    /// the fixture no memory).
    func respondLines(_ request: Request) -> Response {
        let query = request.uri.queryParameters
        let count = query["count"].flatMap { Int($0) } ?? 0
        let pad = String(repeating: "x", count: query["pad"].flatMap { Int($0) } ?? 0)
        state.withLock { $0.requests.append(LoggedRequest(path: "/lines", query: request.uri.query ?? "", at: .now, headers: [:])) }
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
            var chunk = ""
            for id in stride(from: 1, through: count, by: 1) {
                chunk += #"{"id":\#(id),"updated_at":"\#(Self.stamp(id))","body":"\#(pad)"}"# + "\n"
                if chunk.utf8.count >= 256 * 1024 {
                    try await writer.write(ByteBuffer(string: chunk))
                    chunk = ""
                }
            }
            if !chunk.isEmpty { try await writer.write(ByteBuffer(string: chunk)) }
            try await writer.finish(nil)
        })
    }

    func respondScripted(_ request: Request) async throws -> Response {
        var request = request
        let body = request.method == .post ? Array(try await request.collectBody(upTo: 1 << 20).readableBytesView) : []
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        // HTTP/1.1's Host travels as the :authority pseudo-header in HTTPTypes.
        if let authority = request.head.authority { headers["host"] = authority }
        let path = request.uri.path
        state.withLock {
            $0.requests.append(LoggedRequest(path: path, query: request.uri.query ?? "", at: .now, headers: headers, body: body,
                                             method: request.method.rawValue))
        }
        var query: [String: String] = [:]
        for (k, v) in request.uri.queryParameters { query[String(k)] = String(v) }
        guard let script = scriptHandler.withLock({ $0 }) else { return Response(status: .notFound) }
        let answer = script(ScriptRequest(path: String(path.dropFirst(2)), query: query, rawQuery: request.uri.query ?? "", headers: headers,
                                          method: request.method.rawValue, body: body))
        if let delay = answer.delay { try await Task.sleep(for: delay) }
        var fields = HTTPFields()
        for (name, value) in answer.headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        if let cut = answer.cutAfter {
            let bytes = answer.bytes ?? Array(answer.body.utf8)
            return Response(status: .init(code: answer.status), headers: fields, body: ResponseBody { writer in
                var at = 0
                while at < min(cut, bytes.count) {
                    let end = min(at + 65_536, cut, bytes.count)
                    try await writer.write(ByteBuffer(bytes: bytes[at..<end]))
                    at = end
                }
                throw CancellationError()
            })
        }
        guard let trickle = answer.trickle else {
            let buffer = answer.bytes.map { ByteBuffer(bytes: $0) } ?? ByteBuffer(string: answer.body)
            return Response(status: .init(code: answer.status), headers: fields, body: .init(byteBuffer: buffer))
        }
        let bytes = Array(answer.body.utf8)
        return Response(status: .init(code: answer.status), headers: fields, body: ResponseBody { writer in
            for byte in bytes {
                try await writer.write(ByteBuffer(bytes: [byte]))
                try await Task.sleep(for: trickle)
            }
            try await writer.finish(nil)
        })
    }

    func serve(_ fault: Fault) async throws -> Response {
        switch fault {
        case .status(let code, let retryAfter):
            var h = HTTPFields()
            if let retryAfter { h[.retryAfter] = retryAfter }
            return Response(status: .init(code: code), headers: h, body: .init(byteBuffer: ByteBuffer(string: #"{"error":"injected"}"#)))
        case .redirect(let location, let code):
            var h = HTTPFields()
            h[.location] = location
            return Response(status: .init(code: code), headers: h, body: .init(byteBuffer: ByteBuffer(string: "")))
        case .reset:
            return Response(status: .ok, headers: [.contentType: "application/json", .contentLength: "100000"], body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: #"{"rows":[{"id":1,"#))
                throw CancellationError()
            })
        case .hang(let seconds):
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return Self.json(#"{"rows":[]}"#)
        case .malformedJSON:
            return Self.json(#"{"rows":[{"id":1},"#)
        case .htmlBody:
            return Response(status: .ok, headers: [.contentType: "text/html"], body: .init(byteBuffer: ByteBuffer(string: "<html>maintenance</html>")))
        case .noRecordsArray:
            return Self.json(#"{"rows":{"id":1}}"#)
        case .body(let text):
            return Self.json(text)
        case .hugePage(let bytes):
            return Self.json(#"{"rows":[],"pad":""# + String(repeating: "x", count: bytes) + #""}"#)
        }
    }

    static func json(_ text: String, headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.contentType] = "application/json"
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func percent(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }
}
