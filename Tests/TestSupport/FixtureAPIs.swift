import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import SyncCore

/// Deterministic upstreams that follow the published pagination contracts of real APIs
/// (GitHub, Stripe, HubSpot, Salesforce, Shopify, Zendesk, a Relay-style GraphQL API, and a
/// parent/child REST API), for tests of the generic paginated-JSON-API connector. A real HTTP
/// server on loopback (Hummingbird); one instance serves one shape at the real API's root
/// paths, so relative links (Salesforce's `nextRecordsUrl`) resolve against the origin.
///
/// The data: items `n` = 1...N (never reused after a delete), each with a name and a time.
/// Every insert or update takes the next "version"; the item's time is
/// `epochBase + version` epoch seconds, formatted as the API formats it
/// (``timestamp(_:_:)``). Contacts of the parent/child shape take versions too.
public final class FixtureAPI: Sendable {
    public enum Shape: Sendable, CaseIterable {
        case github, stripe, hubspot, salesforce, shopify, zendesk, graphql, parentChild
    }

    /// Version v has the time `epochBase + v` (2026-05-28T20:26:40Z + v seconds).
    public static let epochBase = 1_780_000_000

    public struct Item: Sendable, Equatable {
        public var n: Int
        public var name: String
        /// The item's time (Stripe: `created`, which updates move too).
        public var updatedEpoch: Int
        /// The time of its insert.
        public var createdEpoch: Int
        public var shape: Shape
        /// The id as the API shows it (github: the issue `id` 1000+n, stripe `cus_000001`, …).
        public var id: String { FixtureAPI.id(n, shape) }
    }

    /// A contact of the parent/child shape: `id` repeats across accounts.
    public struct Contact: Sendable, Equatable {
        public var account: Int
        public var id: Int
        public var email: String
        public var updatedEpoch: Int
    }

    public struct LoggedRequest: Sendable {
        public var method: String
        public var path: String
        /// The raw (still percent-encoded) query string.
        public var query: String
        /// Header names in lower case.
        public var headers: [String: String]
        public var body: [UInt8]
        public var at: ContinuousClock.Instant
        /// The decoded query parameters (the first of repeated names).
        public var parameters: [String: String] {
            var out: [String: String] = [:]
            for p in Query(query).pairs where out[p.name] == nil { out[p.name] = p.value }
            return out
        }
    }

    struct Rec: Sendable {
        var version: Int
        var created: Int
        var name: String?
    }

    /// The data, copied (copy-on-write) by every request that reads it.
    struct Store: Sendable {
        /// Index n - 1; nil once deleted.
        var slots: [Rec?] = []
        /// Index version - 1 → the n that took it (0: a contact). Live iff that item's version still is it.
        var byVersion: [Int] = []
        var contactsPerAccount = 5
        /// Contacts added beyond `contactsPerAccount`: the account's highest contact id.
        var contactCount: [Int: Int] = [:]
        /// Contacts added or updated: account → contact id → version.
        var contactVersions: [Int: [Int: Int]] = [:]

        func rec(_ n: Int) -> Rec? { n >= 1 && n <= slots.count ? slots[n - 1] : nil }
        var versions: Int { byVersion.count }

        /// The live n that holds version `v`, if any.
        func live(version v: Int) -> Int? {
            guard v >= 1, v <= byVersion.count else { return nil }
            let n = byVersion[v - 1]
            guard n > 0, let r = rec(n), r.version == v else { return nil }
            return n
        }

        /// The first version whose time is >= `since`.
        static func firstVersion(since: Double?) -> Int {
            guard let since else { return 1 }
            let v = (since - Double(FixtureAPI.epochBase)).rounded(.up)
            if v < 1 { return 1 }
            return v > 1e15 ? Int(1e15) : Int(v)
        }

        /// Live items in time order (ascending versions), from version `from`.
        func byTime(from: Int) -> [Int] {
            var out: [Int] = []
            var v = max(1, from)
            while v <= byVersion.count {
                if let n = live(version: v) { out.append(n) }
                v += 1
            }
            return out
        }

        func byTime(since: Double?) -> [Int] { byTime(from: Self.firstVersion(since: since)) }

        /// Live items in n order whose time is >= `since`.
        func byId(since: Double? = nil) -> [Int] {
            let from = Self.firstVersion(since: since)
            var out: [Int] = []
            for (i, r) in slots.enumerated() {
                if let r, r.version >= from { out.append(i + 1) }
            }
            return out
        }

        func contactCount(account n: Int) -> Int { max(contactsPerAccount, contactCount[n] ?? 0) }

        func contactVersion(account n: Int, id k: Int) -> Int? {
            guard let r = rec(n), k >= 1, k <= contactCount(account: n) else { return nil }
            return contactVersions[n]?[k] ?? r.created
        }
    }

    struct LocatorRow: Sendable {
        var n: Int
        var rec: Rec
    }

    /// A Salesforce query cursor: the result set frozen when the query ran.
    struct Locator: Sendable {
        var rows: [LocatorRow]
        var fields: [String]
        var batch: Int
    }

    struct State {
        var store = Store()
        var requests: [LoggedRequest] = []
        var delay: Double = 0
        var pageSize: Int
        var padding = 0
        var locators: [String: Locator] = [:]
        var locatorCount = 0
    }

    public let shape: Shape
    /// The loopback address it listens on (127.0.0.1 unless given: 127.0.0.2 is another origin).
    public let host: String
    let state: Mutex<State>
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let portValue = Mutex(0)
    public var port: Int { portValue.withLock { $0 } }
    public var baseURL: String { "http://\(host):\(port)" }

    public init(_ shape: Shape, items: Int = 0, host: String = "127.0.0.1") {
        self.shape = shape
        self.host = host
        state = Mutex(State(pageSize: Self.defaultPageSize(shape)))
        insert(count: items)
    }

    /// The API's default page size (used when a request names none); GraphQL and parentChild have no
    /// published default: 10.
    public static func defaultPageSize(_ shape: Shape) -> Int {
        switch shape {
        case .github: 30
        case .stripe, .hubspot, .graphql, .parentChild: 10
        case .salesforce: 2000
        case .shopify: 50
        case .zendesk: 1000
        }
    }

    /// The API's largest page (a larger request is capped to it). HubSpot's search allows 200.
    public static func maxPageSize(_ shape: Shape) -> Int {
        switch shape {
        case .github, .stripe, .hubspot, .graphql, .parentChild: 100
        case .salesforce: 2000
        case .shopify: 250
        case .zendesk: 1000
        }
    }

    // MARK: Data

    /// Adds `count` items with the next n, each taking the next version.
    public func insert(count: Int) {
        guard count > 0 else { return }
        state.withLock { s in
            s.store.slots.reserveCapacity(s.store.slots.count + count)
            s.store.byVersion.reserveCapacity(s.store.byVersion.count + count)
            for _ in 0..<count {
                let n = s.store.slots.count + 1
                s.store.byVersion.append(n)
                let v = s.store.byVersion.count
                s.store.slots.append(Rec(version: v, created: v, name: nil))
            }
        }
    }

    /// Renames the given items ("…-vK", K the new version) and moves their time to the new version's.
    public func update(ns: [Int]) {
        state.withLock { s in
            for n in ns {
                guard var r = s.store.rec(n) else { continue }
                s.store.byVersion.append(n)
                let v = s.store.byVersion.count
                r.name = (r.name ?? "item-\(n)") + "-v\(v)"
                r.version = v
                s.store.slots[n - 1] = r
            }
        }
    }

    public func delete(ns: [Int]) {
        state.withLock { s in
            for n in ns where s.store.rec(n) != nil { s.store.slots[n - 1] = nil }
        }
    }

    /// The live items, by n.
    public var items: [Item] {
        let store = state.withLock { $0.store }
        var out: [Item] = []
        for (i, r) in store.slots.enumerated() {
            if let r { out.append(item(i + 1, r)) }
        }
        return out
    }

    public func item(_ n: Int) -> Item? {
        state.withLock { $0.store.rec(n) }.map { item(n, $0) }
    }

    /// The number of live items.
    public var count: Int { state.withLock { s in s.store.slots.reduce(0) { $0 + ($1 == nil ? 0 : 1) } } }

    func item(_ n: Int, _ r: Rec) -> Item {
        Item(n: n, name: r.name ?? "item-\(n)", updatedEpoch: Self.epochBase + r.version,
             createdEpoch: Self.epochBase + r.created, shape: shape)
    }

    /// The page size used when a request names none (the API's default until set); capped by the API's maximum.
    public var pageSize: Int {
        get { state.withLock { $0.pageSize } }
        set { state.withLock { $0.pageSize = newValue } }
    }

    /// Characters of a `"body"` field added to every JSONL ticket (zendesk), to reach large exports cheaply.
    public var padding: Int {
        get { state.withLock { $0.padding } }
        set { state.withLock { $0.padding = max(0, newValue) } }
    }

    /// Every data response waits this long first (for tests that kill a sync mid-way).
    public func setDelay(seconds: Double) { state.withLock { $0.delay = seconds } }

    // MARK: Contacts (parentChild)

    /// How many contacts (ids 1…m) every account has, unless `addContacts` gave it more. Default 5.
    public var contactsPerAccount: Int {
        get { state.withLock { $0.store.contactsPerAccount } }
        set { state.withLock { $0.store.contactsPerAccount = max(0, newValue) } }
    }

    /// Gives account `n` `count` more contacts (the next ids), each taking the next version.
    public func addContacts(account n: Int, count: Int) {
        state.withLock { s in
            guard s.store.rec(n) != nil, count > 0 else { return }
            var m = s.store.contactCount(account: n)
            for _ in 0..<count {
                m += 1
                s.store.byVersion.append(0)
                s.store.contactVersions[n, default: [:]][m] = s.store.byVersion.count
            }
            s.store.contactCount[n] = m
        }
    }

    /// Moves contact `id` of account `n` to the next version (its `updated_at` grows).
    public func updateContact(account n: Int, id k: Int) {
        state.withLock { s in
            guard s.store.contactVersion(account: n, id: k) != nil else { return }
            s.store.byVersion.append(0)
            s.store.contactVersions[n, default: [:]][k] = s.store.byVersion.count
        }
    }

    /// The contacts of account `n`, by id.
    public func contacts(account n: Int) -> [Contact] {
        let store = state.withLock { $0.store }
        guard store.rec(n) != nil else { return [] }
        return (1...max(1, store.contactCount(account: n))).compactMap { k in
            store.contactVersion(account: n, id: k).map {
                Contact(account: n, id: k, email: Self.contactEmail(account: n, id: k), updatedEpoch: Self.epochBase + $0)
            }
        }
    }

    /// How many requests asked for the contacts of account `n`.
    public func contactRequestCount(account n: Int) -> Int {
        requests(path: "/accounts/acc_\(n)/contacts").count
    }

    static func contactEmail(account n: Int, id k: Int) -> String { "contact-\(k)@acc-\(n).example.com" }

    // MARK: The request log

    public var requests: [LoggedRequest] { state.withLock { $0.requests } }
    public func requests(path: String) -> [LoggedRequest] { requests.filter { $0.path == path } }
    public func clearLog() { state.withLock { $0.requests.removeAll() } }

    // MARK: Ids and times

    /// The id of item `n` as `shape` shows it.
    public static func id(_ n: Int, _ shape: Shape) -> String {
        switch shape {
        case .github: "\(1000 + n)"
        case .stripe: "cus_" + pad(n, 6)
        case .hubspot, .zendesk: "\(n)"
        case .salesforce: "001" + pad(n, 15)
        case .shopify: "\(632_910_392 + n)"
        case .graphql: "gid://fixture/Item/\(n)"
        case .parentChild: "acc_\(n)"
        }
    }

    /// `epoch` formatted as `shape` formats its update times: RFC 3339 `Z` (github, zendesk, graphql,
    /// parentChild), with millis (hubspot), Salesforce's `.000+0000`, Shopify's `-04:00` local time,
    /// Stripe's epoch integer.
    public static func timestamp(_ epoch: Int, _ shape: Shape) -> String {
        switch shape {
        case .github, .zendesk, .graphql, .parentChild: iso(epoch)
        case .hubspot: iso(epoch, millis: true)
        case .salesforce: iso(epoch, millis: true, zone: "+0000")
        case .shopify: iso(epoch - 4 * 3600, zone: "-04:00")
        case .stripe: "\(epoch)"
        }
    }

    static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// `t` as `YYYY-MM-DDTHH:MM:SS[.000]<zone>` (UTC fields of `t`).
    static func iso(_ t: Int, millis: Bool = false, zone: String = "Z") -> String {
        var days = t / 86_400
        var secs = t % 86_400
        if secs < 0 {
            secs += 86_400
            days -= 1
        }
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        let date = "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
        let time = "\(pad(secs / 3600, 2)):\(pad(secs % 3600 / 60, 2)):\(pad(secs % 60, 2))"
        return date + "T" + time + (millis ? ".000" : "") + zone
    }

    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Parses `YYYY-MM-DD[THH:MM:SS[.fff]][Z|±HH:MM|±HHMM|±HH]` to epoch seconds. Without a zone the time
    /// is UTC, unless `requireZone`.
    public static func parseTime(_ text: String, requireZone: Bool = false) -> Double? {
        let b = Array(text.utf8)
        func num(_ i: Int, _ len: Int) -> Int? {
            guard i + len <= b.count else { return nil }
            var v = 0
            for j in i..<(i + len) {
                guard b[j] >= 48, b[j] <= 57 else { return nil }
                v = v * 10 + Int(b[j] - 48)
            }
            return v
        }
        guard b.count >= 10, let y = num(0, 4), b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2),
              (1...12).contains(mo), (1...31).contains(d) else { return nil }
        var seconds = Double(daysFromCivil(y, mo, d) * 86_400)
        if b.count == 10 { return requireZone ? nil : seconds }
        guard b[10] == 84 || b[10] == 116 || b[10] == 32, let h = num(11, 2), b.count > 13, b[13] == 58, let mi = num(14, 2),
              b.count > 16, b[16] == 58, let sec = num(17, 2), h < 24, mi < 60, sec < 61 else { return nil }
        seconds += Double(h * 3600 + mi * 60 + sec)
        var i = 19
        if i < b.count, b[i] == 46 {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                seconds += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            if i == start { return nil }
        }
        if i == b.count { return requireZone ? nil : seconds }
        if b[i] == 90 || b[i] == 122 { return i + 1 == b.count ? seconds : nil }
        guard b[i] == 43 || b[i] == 45, let oh = num(i + 1, 2) else { return nil }
        let sign = b[i] == 43 ? 1.0 : -1.0
        i += 3
        var om = 0
        if i < b.count {
            if b[i] == 58 { i += 1 }
            guard let v = num(i, 2) else { return nil }
            om = v
            i += 2
        }
        guard i == b.count, oh < 24, om < 60 else { return nil }
        return seconds - sign * Double(oh * 3600 + om * 60)
    }

    // MARK: Server

    /// Starts listening on a free loopback port.
    public func start() async throws {
        let router = Router()
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
            router.on("/**", method: method) { request, _ in try await self.handle(request) }
        }
        let (running, bound) = await startLoopback(router, host: host, label: "fixture-api")
        task.withLock { $0 = running }
        portValue.withLock { $0 = bound }
    }

    public func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        _ = try? await t?.value
    }

    /// A request as the handlers see it.
    struct Req {
        var method: String
        var path: String
        var query: Query
        var headers: [String: String]
        var body: [UInt8]
    }

    func handle(_ request: Request) async throws -> Response {
        var request = request
        var body: [UInt8] = []
        if request.method == .post || request.method == .put || request.method == .patch {
            body = Array(try await request.collectBody(upTo: 16 << 20).readableBytesView)
        }
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        if let authority = request.head.authority { headers["host"] = authority }
        let logged = LoggedRequest(method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "",
                                   headers: headers, body: body, at: .now)
        let delay = state.withLock { s in
            s.requests.append(logged)
            return s.delay
        }
        if delay > 0 { try await Task.sleep(for: .milliseconds(Int(delay * 1000))) }
        let r = Req(method: logged.method, path: logged.path, query: Query(logged.query), headers: headers, body: body)
        let store = state.withLock { $0.store }
        switch shape {
        case .github: return github(r, store)
        case .stripe: return stripe(r, store)
        case .hubspot: return r.path == "/crm/v3/objects/contacts/search" ? hubspotSearch(r, store) : hubspotList(r, store)
        case .salesforce: return salesforce(r, store)
        case .shopify: return shopify(r, store)
        case .zendesk: return zendesk(r, store)
        case .graphql: return graphql(r, store)
        case .parentChild: return parentChild(r, store)
        }
    }

    /// The page size for a request that asked for `raw` (nil, or not a positive integer: the default).
    func size(_ raw: String?, max: Int) -> Int {
        let asked = raw.flatMap { Int($0) }.flatMap { $0 >= 1 ? $0 : nil } ?? pageSize
        return Swift.max(1, Swift.min(asked, max))
    }

    static func reply(_ status: Int, _ body: String, _ headers: [(String, String)] = [],
                      contentType: String = "application/json; charset=utf-8") -> Response {
        var fields = HTTPFields()
        fields[.contentType] = contentType
        for (name, value) in headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// `s` as a JSON string literal.
    static func q(_ s: String) -> String { RecordKey.jsonQuoted(s) }

    static func name(_ n: Int, _ r: Rec) -> String { r.name ?? "item-\(n)" }

    static func b64url(_ s: String) -> String {
        Data(s.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unb64url(_ s: String) -> String? {
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while t.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t).flatMap { String(data: $0, encoding: .utf8) }
    }

    // MARK: GitHub

    func github(_ r: Req, _ s: Store) -> Response {
        guard r.path == "/repos/acme/widgets/issues", r.method == "GET" else {
            return Self.reply(404, #"{"message":"Not Found","documentation_url":"https://docs.github.com/rest","status":"404"}"#)
        }
        func invalid(_ field: String) -> Response {
            Self.reply(422, #"{"message":"Validation Failed","errors":[{"resource":"Issue","field":"\#(field)","code":"invalid"}],"documentation_url":"https://docs.github.com/rest/issues/issues#list-repository-issues","status":"422"}"#)
        }
        let stateFilter = r.query["state"] ?? "open"
        guard ["open", "closed", "all"].contains(stateFilter) else { return invalid("state") }
        var since: Double?
        if let raw = r.query["since"] {
            guard let t = Self.parseTime(raw) else { return invalid("since") }
            since = t
        }
        let sort = r.query["sort"] ?? "created"
        guard ["created", "updated", "comments"].contains(sort) else { return invalid("sort") }
        let direction = r.query["direction"] ?? "desc"
        guard ["asc", "desc"].contains(direction) else { return invalid("direction") }
        let perPage = size(r.query["per_page"], max: 100)
        let page = max(1, r.query["page"].flatMap { Int($0) } ?? 1)
        var ns: [Int] = []
        if stateFilter != "closed" {  // every issue here is open
            ns = sort == "updated" ? s.byTime(since: since) : s.byId(since: since)
            if direction == "desc" { ns.reverse() }
        }
        let last = max(1, (ns.count + perPage - 1) / perPage)
        let lo = (page - 1) * perPage
        let slice = lo < ns.count ? ns[lo..<min(ns.count, lo + perPage)] : []
        var body = "["
        for (i, n) in slice.enumerated() {
            let rec = s.rec(n)!
            if i > 0 { body += "," }
            body += #"{"id":\#(1000 + n),"number":\#(n),"title":\#(Self.q(Self.name(n, rec))),"state":"open","locked":false,"comments":0,"#
            body += #""url":"\#(baseURL)/repos/acme/widgets/issues/\#(n)","created_at":"\#(Self.iso(Self.epochBase + rec.created))","#
            body += #""updated_at":"\#(Self.iso(Self.epochBase + rec.version))","closed_at":null}"#
        }
        body += "]"
        var headers: [(String, String)] = []
        if last > 1 || page > 1 {
            func link(_ p: Int, _ rel: String) -> String {
                "<\(baseURL)\(r.path)?\(r.query.encoded(setting: "page", to: "\(p)"))>; rel=\"\(rel)\""
            }
            var rels: [String] = []
            if page > 1 { rels.append(link(min(page - 1, last), "prev")) }
            if page < last {
                rels.append(link(page + 1, "next"))
                rels.append(link(last, "last"))
            }
            if page > 1 { rels.append(link(1, "first")) }
            headers.append(("Link", rels.joined(separator: ", ")))
        }
        return Self.reply(200, body, headers)
    }

    // MARK: Stripe

    static let stripeKnown: Set<String> = ["limit", "starting_after", "ending_before", "email", "test_clock", "expand[]", "expand",
                                           "created", "created[gt]", "created[gte]", "created[lt]", "created[lte]"]

    func stripe(_ r: Req, _ s: Store) -> Response {
        func err(_ message: String, _ param: String?, code: String? = nil, status: Int = 400) -> Response {
            var e = #"{"error":{"type":"invalid_request_error","message":\#(Self.q(message))"#
            if let code { e += #","code":"\#(code)""# }
            if let param { e += #","param":\#(Self.q(param))"# }
            return Self.reply(status, e + "}}", contentType: "application/json")
        }
        guard r.path == "/v1/customers", r.method == "GET" else {
            return err("Unrecognized request URL (\(r.method): \(r.path)).", nil, status: 404)
        }
        for p in r.query.pairs where !Self.stripeKnown.contains(p.name) {
            return err("Received unknown parameter: \(p.name)", p.name, code: "parameter_unknown")
        }
        var limit = min(pageSize, 100)
        if let raw = r.query["limit"] {
            guard let v = Int(raw) else { return err("Invalid integer: \(raw)", "limit") }
            guard v >= 1 else { return err("This value must be greater than or equal to 1.", "limit") }
            limit = min(v, 100)
        }
        let after = r.query["starting_after"], before = r.query["ending_before"]
        if after != nil, before != nil {
            return err("You may only specify one of these parameters: ending_before, starting_after.", "ending_before")
        }
        var lower = Int.min, upper = Int.max
        for p in r.query.pairs where p.name.hasPrefix("created") {
            guard let v = Int(p.value) else { return err("Invalid integer: \(p.value)", p.name) }
            switch p.name {
            case "created": lower = max(lower, v); upper = min(upper, v)
            case "created[gt]": lower = max(lower, v + 1)
            case "created[gte]": lower = max(lower, v)
            case "created[lt]": upper = min(upper, v - 1)
            default: upper = min(upper, v)  // created[lte]
            }
        }
        let email = r.query["email"]
        // Newest first: descending created (every version is distinct, so no ties).
        var list = s.byTime(since: lower == Int.min ? nil : Double(lower)).reversed().filter { n in
            let rec = s.rec(n)!
            return Self.epochBase + rec.version <= upper && (email == nil || email == Self.stripeEmail(n))
        }
        var page: ArraySlice<Int>
        var hasMore: Bool
        if let cursor = after ?? before {
            guard let n = Self.stripeN(cursor), let anchor = s.rec(n) else {
                return err("No such customer: '\(cursor)'", after != nil ? "starting_after" : "ending_before", code: "resource_missing")
            }
            if after != nil {
                list = list.filter { s.rec($0)!.version < anchor.version }
                page = list.prefix(limit)
            } else {
                list = list.filter { s.rec($0)!.version > anchor.version }
                page = list.suffix(limit)
            }
            hasMore = list.count > limit
        } else {
            page = list.prefix(limit)
            hasMore = list.count > limit
        }
        var body = #"{"object":"list","url":"/v1/customers","has_more":\#(hasMore),"data":["#
        for (i, n) in page.enumerated() {
            let rec = s.rec(n)!
            if i > 0 { body += "," }
            body += #"{"id":"\#(Self.id(n, .stripe))","object":"customer","created":\#(Self.epochBase + rec.version),"#
            body += #""email":"\#(Self.stripeEmail(n))","livemode":false,"metadata":{},"name":\#(Self.q(Self.name(n, rec)))}"#
        }
        return Self.reply(200, body + "]}", contentType: "application/json")
    }

    static func stripeEmail(_ n: Int) -> String { "customer-\(n)@example.com" }

    static func stripeN(_ id: String) -> Int? {
        guard id.hasPrefix("cus_"), let n = Int(id.dropFirst(4)), n >= 1, FixtureAPI.id(n, .stripe) == id else { return nil }
        return n
    }

    // MARK: HubSpot

    static func hubspotError(_ message: String) -> Response {
        reply(400, #"{"status":"error","message":\#(q(message)),"correlationId":"6f0b6bd4-1b52-4a76-8f0e-2d5f5f2c0000","category":"VALIDATION_ERROR"}"#)
    }

    /// HubSpot's list `after` token: base64 of "<n>\n" with its `=` already percent-encoded (as HubSpot's are).
    static func hubspotToken(_ n: Int) -> String {
        Data("\(n)\n".utf8).base64EncodedString().replacingOccurrences(of: "=", with: "%3D")
    }

    static func hubspotTokenN(_ token: String) -> Int? {
        var t = token
        if t.contains("%") { t = t.removingPercentEncoding ?? t }
        while t.count % 4 != 0 { t += "=" }
        guard let data = Data(base64Encoded: t), let text = String(data: data, encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func hubspotContact(_ n: Int, _ rec: Rec) -> String {
        let created = Self.iso(Self.epochBase + rec.created, millis: true)
        let updated = Self.iso(Self.epochBase + rec.version, millis: true)
        var out = #"{"id":"\#(n)","properties":{"createdate":"\#(created)","email":"contact-\#(n)@example.com","#
        out += #""firstname":\#(Self.q(Self.name(n, rec))),"hs_object_id":"\#(n)","lastmodifieddate":"\#(updated)"},"#
        out += #""createdAt":"\#(created)","updatedAt":"\#(updated)","archived":false}"#
        return out
    }

    func hubspotList(_ r: Req, _ s: Store) -> Response {
        guard r.path == "/crm/v3/objects/contacts", r.method == "GET" else { return Self.reply(404, "") }
        var limit = min(pageSize, 100)
        if let raw = r.query["limit"] {
            guard let v = Int(raw), v >= 1 else { return Self.hubspotError("limit must be a positive integer, got \(raw)") }
            limit = min(v, 100)
        }
        var start = 1
        if let raw = r.query["after"] {
            guard let n = Self.hubspotTokenN(raw) else { return Self.hubspotError("Invalid after: \(raw)") }
            start = n
        }
        let archived = r.query["archived"] == "true"
        let ns = archived ? [] : s.byId().filter { $0 >= start }  // nothing is kept archived
        var body = #"{"results":["#
        for (i, n) in ns.prefix(limit).enumerated() {
            if i > 0 { body += "," }
            body += hubspotContact(n, s.rec(n)!)
        }
        body += "]"
        if ns.count > limit {
            let token = Self.hubspotToken(ns[limit])
            let rest = r.query.encoded(dropping: ["after"])
            let link = "\(baseURL)\(r.path)?\(rest.isEmpty ? "" : rest + "&")after=\(token)"
            body += #","paging":{"next":{"after":"\#(token)","link":"\#(link)"}}"#
        }
        return Self.reply(200, body + "}")
    }

    func hubspotSearch(_ r: Req, _ s: Store) -> Response {
        guard r.method == "POST" else { return Self.reply(405, "") }
        guard let json = try? parseJSON(r.body), case .object(let o) = json else {
            return Self.hubspotError("Invalid input JSON on line 1, column 1: body is not a JSON object")
        }
        var limit = min(pageSize, 200)
        if let v = o["limit"], !v.isNull {
            guard let l = v.intValue ?? v.stringValue.flatMap({ Int($0) }), l >= 1 else { return Self.hubspotError("limit must be a positive integer") }
            limit = min(l, 200)
        }
        var offset = 0
        if let v = o["after"], !v.isNull {
            guard let a = v.intValue ?? v.stringValue.flatMap({ Int($0) }), a >= 0 else { return Self.hubspotError("after must be an offset") }
            offset = a
        }
        if offset >= 10_000 {
            return Self.hubspotError("The search endpoint returns at most 10,000 results: after=\(offset) is beyond them.")
        }
        // filterGroups are ORed, the filters of a group ANDed.
        struct Filter {
            var field: String
            var op: String
            var value: Double
        }
        var groups: [[Filter]] = []
        for g in o["filterGroups"]?.arrayValue ?? [] {
            var filters: [Filter] = []
            for f in g["filters"]?.arrayValue ?? [] {
                guard let property = f["propertyName"]?.stringValue, let op = f["operator"]?.stringValue?.uppercased() else { continue }
                let field: String
                switch property.lowercased() {
                case "lastmodifieddate", "hs_lastmodifieddate": field = "modified"
                case "createdate": field = "created"
                case "hs_object_id": field = "id"
                default: continue  // not understood: ignored
                }
                guard ["EQ", "NEQ", "GT", "GTE", "LT", "LTE"].contains(op) else {
                    return Self.hubspotError("Unsupported operator \(op)")
                }
                let raw = f["value"]
                var value: Double
                if let d = raw?.doubleValue {
                    value = d
                } else if let text = raw?.stringValue, let d = Double(text) {
                    value = d
                } else if field != "id", let text = raw?.stringValue, let t = Self.parseTime(text) {
                    value = t * 1000
                } else {
                    return Self.hubspotError("Invalid value for \(property): \(raw.map { "\($0)" } ?? "missing")")
                }
                filters.append(Filter(field: field, op: op, value: value))
            }
            groups.append(filters)
        }
        func matches(_ n: Int, _ rec: Rec) -> Bool {
            if groups.isEmpty { return true }
            return groups.contains { group in
                group.allSatisfy { f in
                    let v: Double = switch f.field {
                    case "modified": Double(Self.epochBase + rec.version) * 1000
                    case "created": Double(Self.epochBase + rec.created) * 1000
                    default: Double(n)
                    }
                    switch f.op {
                    case "EQ": return v == f.value
                    case "NEQ": return v != f.value
                    case "GT": return v > f.value
                    case "GTE": return v >= f.value
                    case "LT": return v < f.value
                    default: return v <= f.value
                    }
                }
            }
        }
        var ns: [Int]
        let sort = o["sorts"]?.arrayValue?.first
        let sortName = (sort?["propertyName"]?.stringValue ?? sort?.stringValue ?? "hs_object_id").lowercased()
        let descending = sort?["direction"]?.stringValue?.uppercased() == "DESCENDING" || sort?.stringValue?.hasPrefix("-") == true
        if sortName.hasSuffix("lastmodifieddate") {
            ns = s.byTime(from: 1)
        } else {
            ns = s.byId()
        }
        ns = ns.filter { matches($0, s.rec($0)!) }
        if descending { ns.reverse() }
        let page = offset < ns.count ? ns[offset..<min(ns.count, offset + limit)] : []
        var body = #"{"total":\#(ns.count),"results":["#
        for (i, n) in page.enumerated() {
            if i > 0 { body += "," }
            body += hubspotContact(n, s.rec(n)!)
        }
        body += "]"
        if offset + limit < ns.count { body += #","paging":{"next":{"after":"\#(offset + limit)"}}"# }
        return Self.reply(200, body + "}")
    }

    // MARK: Salesforce

    static let salesforceFields = ["Id", "Name", "SystemModstamp", "LastModifiedDate", "CreatedDate"]

    static func salesforceError(_ code: String, _ message: String, status: Int = 400) -> Response {
        reply(status, #"[{"message":\#(q(message)),"errorCode":"\#(code)"}]"#, contentType: "application/json;charset=UTF-8")
    }

    struct SOQL {
        struct Condition {
            var field: String
            var op: String
            var time: Double?
            var id: String?
        }
        var fields: [String]
        var conditions: [Condition] = []
        var orderBy = "Id"
        var descending = false
        var limit: Int?
    }

    static func tokenizeSOQL(_ text: String) -> [String]? {
        var tokens: [String] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace {
                i += 1
            } else if c == "," || c == "(" || c == ")" {
                tokens.append(String(c))
                i += 1
            } else if c == ">" || c == "<" || c == "=" || c == "!" {
                if i + 1 < chars.count, chars[i + 1] == "=" || (c == "<" && chars[i + 1] == ">") {
                    tokens.append(String(chars[i...(i + 1)]))
                    i += 2
                } else {
                    tokens.append(String(c))
                    i += 1
                }
            } else if c == "'" {
                var j = i + 1
                while j < chars.count, chars[j] != "'" { j += chars[j] == "\\" ? 2 : 1 }
                guard j < chars.count else { return nil }
                tokens.append(String(chars[i...j]))
                i = j + 1
            } else {
                var j = i
                while j < chars.count, !chars[j].isWhitespace, !",()<>=!'".contains(chars[j]) { j += 1 }
                tokens.append(String(chars[i..<j]))
                i = j
            }
        }
        return tokens
    }

    /// Parses the SOQL this fixture understands; the error response otherwise.
    static func parseSOQL(_ text: String) -> Outcome<SOQL> {
        func malformed(_ m: String) -> Outcome<SOQL> { .failure(ResponseError(salesforceError("MALFORMED_QUERY", m))) }
        guard let tokens = tokenizeSOQL(text), tokens.first?.uppercased() == "SELECT" else {
            return malformed("unexpected token: '\(text.prefix(20))': the query must start with SELECT")
        }
        var i = 1
        var fields: [String] = []
        var item: [String] = []
        func flush() -> String? {
            defer { item = [] }
            let joined = item.joined()
            if ["FIELDS(ALL)", "FIELDS(STANDARD)"].contains(joined.uppercased()) {
                fields += salesforceFields
                return nil
            }
            guard item.count == 1 else { return "unexpected token: '\(joined)'" }
            guard let f = salesforceFields.first(where: { $0.lowercased() == joined.lowercased() }) else {
                return "No such column '\(joined)' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name."
            }
            fields.append(f)
            return nil
        }
        while i < tokens.count, tokens[i].uppercased() != "FROM" {
            if tokens[i] == "," {
                if let e = flush() { return .failure(ResponseError(salesforceError(e.hasPrefix("No such") ? "INVALID_FIELD" : "MALFORMED_QUERY", e))) }
            } else {
                item.append(tokens[i])
            }
            i += 1
        }
        if let e = flush() { return .failure(ResponseError(salesforceError(e.hasPrefix("No such") ? "INVALID_FIELD" : "MALFORMED_QUERY", e))) }
        guard i < tokens.count, !fields.isEmpty else { return malformed("unexpected token: FROM is missing") }
        i += 1
        guard i < tokens.count else { return malformed("unexpected end of query after FROM") }
        guard tokens[i].lowercased() == "account" else {
            return .failure(ResponseError(salesforceError("INVALID_TYPE", "sObject type '\(tokens[i])' is not supported.")))
        }
        i += 1
        var soql = SOQL(fields: fields)
        func field(_ t: String) -> String? { salesforceFields.first { $0.lowercased() == t.lowercased() } }
        if i < tokens.count, tokens[i].uppercased() == "WHERE" {
            i += 1
            while true {
                guard i + 2 < tokens.count else { return malformed("unexpected end of WHERE") }
                guard let f = field(tokens[i]) else {
                    return .failure(ResponseError(salesforceError("INVALID_FIELD", "No such column '\(tokens[i])' on entity 'Account'.")))
                }
                let op = tokens[i + 1]
                guard [">", ">=", "<", "<=", "=", "!=", "<>"].contains(op) else { return malformed("unexpected token: '\(op)'") }
                let literal = tokens[i + 2]
                var condition = SOQL.Condition(field: f, op: op)
                if f == "Id" {
                    guard literal.hasPrefix("'"), literal.hasSuffix("'"), literal.count >= 2 else { return malformed("invalid ID field: \(literal)") }
                    condition.id = String(literal.dropFirst().dropLast())
                } else {
                    if literal.hasPrefix("'") {
                        return .failure(ResponseError(salesforceError("INVALID_FIELD",
                            "value of filter criterion for field '\(f)' must be of type dateTime and should not be enclosed in quotes")))
                    }
                    guard literal.count > 10, let t = parseTime(literal, requireZone: true) else {
                        return malformed("line 1:\(text.count) no viable alternative at character '\(literal)'")
                    }
                    condition.time = t
                }
                soql.conditions.append(condition)
                i += 3
                if i < tokens.count, tokens[i].uppercased() == "AND" {
                    i += 1
                    continue
                }
                if i < tokens.count, tokens[i].uppercased() == "OR" { return malformed("OR is not supported by this fixture") }
                break
            }
        }
        if i + 1 < tokens.count, tokens[i].uppercased() == "ORDER", tokens[i + 1].uppercased() == "BY" {
            guard i + 2 < tokens.count, let f = field(tokens[i + 2]) else { return malformed("unexpected token after ORDER BY") }
            soql.orderBy = f
            i += 3
            if i < tokens.count, ["ASC", "DESC"].contains(tokens[i].uppercased()) {
                soql.descending = tokens[i].uppercased() == "DESC"
                i += 1
            }
            if i + 1 < tokens.count, tokens[i].uppercased() == "NULLS", ["FIRST", "LAST"].contains(tokens[i + 1].uppercased()) { i += 2 }
        }
        if i < tokens.count, tokens[i].uppercased() == "LIMIT" {
            guard i + 1 < tokens.count, let l = Int(tokens[i + 1]), l >= 0 else { return malformed("invalid LIMIT") }
            soql.limit = l
            i += 2
        }
        guard i == tokens.count else { return malformed("unexpected token: '\(tokens[i])'") }
        return .success(soql)
    }

    /// A parsed value, or the error response to send instead.
    enum Outcome<T> {
        case success(T)
        case failure(ResponseError)
    }

    struct ResponseError {
        var response: Response
        init(_ response: Response) { self.response = response }
    }

    func salesforceRecord(_ n: Int, _ rec: Rec, _ fields: [String]) -> String {
        let id = Self.id(n, .salesforce)
        var out = #"{"attributes":{"type":"Account","url":"/services/data/v59.0/sobjects/Account/\#(id)"}"#
        for f in fields {
            switch f {
            case "Id": out += #","Id":"\#(id)""#
            case "Name": out += #","Name":\#(Self.q(Self.name(n, rec)))"#
            case "CreatedDate": out += #","CreatedDate":"\#(Self.timestamp(Self.epochBase + rec.created, .salesforce))""#
            default: out += #","\#(f)":"\#(Self.timestamp(Self.epochBase + rec.version, .salesforce))""#
            }
        }
        return out + "}"
    }

    /// The batch size the `Sforce-Query-Options: batchSize=N` header asks for (1...2000 here), if any.
    static func batchSize(_ headers: [String: String]) -> Int? {
        guard let options = headers["sforce-query-options"] else { return nil }
        for part in options.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == "batchsize", let v = Int(kv[1]) { return max(1, min(v, 2000)) }
        }
        return nil
    }

    func salesforcePage(_ locatorID: String, _ locator: Locator, offset: Int, batch: Int) -> Response {
        let end = min(locator.rows.count, offset + batch)
        let done = end >= locator.rows.count
        var body = #"{"totalSize":\#(locator.rows.count),"done":\#(done),"#
        if !done { body += #""nextRecordsUrl":"/services/data/v59.0/query/\#(locatorID)-\#(end)","# }
        body += #""records":["#
        for i in offset..<max(offset, end) {
            if i > offset { body += "," }
            body += salesforceRecord(locator.rows[i].n, locator.rows[i].rec, locator.fields)
        }
        return Self.reply(200, body + "]}", contentType: "application/json;charset=UTF-8")
    }

    func salesforce(_ r: Req, _ s: Store) -> Response {
        let prefix = "/services/data/v59.0/query"
        guard r.method == "GET", r.path == prefix || r.path.hasPrefix(prefix + "/") else {
            return Self.salesforceError("NOT_FOUND", "The requested resource does not exist", status: 404)
        }
        if r.path != prefix {
            let rest = String(r.path.dropFirst(prefix.count + 1))
            guard let dash = rest.lastIndex(of: "-"), let offset = Int(rest[rest.index(after: dash)...]) else {
                return Self.salesforceError("INVALID_QUERY_LOCATOR", "invalid query locator")
            }
            let id = String(rest[..<dash])
            guard let locator = state.withLock({ $0.locators[id] }), offset >= 0, offset <= locator.rows.count else {
                return Self.salesforceError("INVALID_QUERY_LOCATOR", "invalid query locator")
            }
            return salesforcePage(id, locator, offset: offset, batch: Self.batchSize(r.headers) ?? locator.batch)
        }
        guard let text = r.query["q"] else {
            return Self.salesforceError("MALFORMED_QUERY", "A query string has to be specified")
        }
        let soql: SOQL
        switch Self.parseSOQL(text) {
        case .success(let parsed): soql = parsed
        case .failure(let e): return e.response
        }
        var ns: [Int]
        switch soql.orderBy {
        case "SystemModstamp", "LastModifiedDate": ns = s.byTime(from: 1)
        case "Name": ns = s.byId().sorted { (Self.name($0, s.rec($0)!), $0) < (Self.name($1, s.rec($1)!), $1) }
        default: ns = s.byId()  // Id; CreatedDate (created order is n order)
        }
        ns = ns.filter { n in
            let rec = s.rec(n)!
            return soql.conditions.allSatisfy { c in
                if let id = c.id {
                    let mine = Self.id(n, .salesforce)
                    switch c.op {
                    case ">": return mine > id
                    case ">=": return mine >= id
                    case "<": return mine < id
                    case "<=": return mine <= id
                    case "=": return mine == id
                    default: return mine != id
                    }
                }
                let v = Double(Self.epochBase + (c.field == "CreatedDate" ? rec.created : rec.version))
                let t = c.time ?? 0
                switch c.op {
                case ">": return v > t
                case ">=": return v >= t
                case "<": return v < t
                case "<=": return v <= t
                case "=": return v == t
                default: return v != t
                }
            }
        }
        if soql.descending { ns.reverse() }
        if let limit = soql.limit { ns = Array(ns.prefix(limit)) }
        let batch = Self.batchSize(r.headers) ?? min(pageSize, 2000)
        let locator = Locator(rows: ns.map { LocatorRow(n: $0, rec: s.rec($0)!) }, fields: soql.fields, batch: batch)
        let id = state.withLock { st in
            st.locatorCount += 1
            let id = "01gFX" + Self.pad(st.locatorCount, 10) + "IAW"
            if locator.rows.count > batch { st.locators[id] = locator }
            return id
        }
        return salesforcePage(id, locator, offset: 0, batch: batch)
    }

    // MARK: Shopify

    static let shopifyPath = "/admin/api/2024-01/products.json"
    static let shopifyProductBase = 632_910_392

    /// The filters a page_info token carries, with its position.
    struct ShopifyFilter {
        var updatedMin: Double?
        var updatedMax: Double?
        var createdMin: Double?
        var createdMax: Double?
        var sinceID: Int?
        var ids: [Int]?
        var direction = "next"
        var anchor = 0  // the product id after (next) or before (prev) which the page lies

        func token() -> String {
            var parts = ["direction=\(direction)", "anchor=\(anchor)"]
            if let updatedMin { parts.append("updated_at_min=\(updatedMin)") }
            if let updatedMax { parts.append("updated_at_max=\(updatedMax)") }
            if let createdMin { parts.append("created_at_min=\(createdMin)") }
            if let createdMax { parts.append("created_at_max=\(createdMax)") }
            if let sinceID { parts.append("since_id=\(sinceID)") }
            if let ids { parts.append("ids=" + ids.map(String.init).joined(separator: ".")) }
            return FixtureAPI.b64url(parts.joined(separator: "&"))
        }

        init() {}

        init?(token: String) {
            guard let text = FixtureAPI.unb64url(token) else { return nil }
            var sawDirection = false
            for part in text.split(separator: "&") {
                let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { return nil }
                switch kv[0] {
                case "direction":
                    guard kv[1] == "next" || kv[1] == "prev" else { return nil }
                    direction = kv[1]
                    sawDirection = true
                case "anchor": guard let v = Int(kv[1]) else { return nil }; anchor = v
                case "updated_at_min": guard let v = Double(kv[1]) else { return nil }; updatedMin = v
                case "updated_at_max": guard let v = Double(kv[1]) else { return nil }; updatedMax = v
                case "created_at_min": guard let v = Double(kv[1]) else { return nil }; createdMin = v
                case "created_at_max": guard let v = Double(kv[1]) else { return nil }; createdMax = v
                case "since_id": guard let v = Int(kv[1]) else { return nil }; sinceID = v
                case "ids":
                    let v = kv[1].split(separator: ".").compactMap { Int($0) }
                    ids = v
                default: return nil
                }
            }
            if !sawDirection { return nil }
        }

        func matches(_ n: Int, _ rec: Rec) -> Bool {
            let updated = Double(FixtureAPI.epochBase + rec.version), created = Double(FixtureAPI.epochBase + rec.created)
            let id = FixtureAPI.shopifyProductBase + n
            if let updatedMin, updated < updatedMin { return false }
            if let updatedMax, updated > updatedMax { return false }
            if let createdMin, created < createdMin { return false }
            if let createdMax, created > createdMax { return false }
            if let sinceID, id <= sinceID { return false }
            if let ids, !ids.contains(id) { return false }
            return true
        }
    }

    func shopify(_ r: Req, _ s: Store) -> Response {
        guard r.path == Self.shopifyPath, r.method == "GET" else { return Self.reply(404, #"{"errors":"Not Found"}"#) }
        func invalid(_ param: String) -> Response { Self.reply(400, #"{"errors":{"\#(param)":"Invalid value."}}"#) }
        let limit = size(r.query["limit"], max: 250)
        if let raw = r.query["limit"], Int(raw) == nil || Int(raw)! < 1 { return invalid("limit") }
        var filter: ShopifyFilter
        let fromToken: Bool
        if let token = r.query["page_info"] {
            // The page_info link carries the filters: anything but limit and fields beside it is refused.
            guard r.query.pairs.allSatisfy({ ["page_info", "limit", "fields"].contains($0.name) }),
                  let decoded = ShopifyFilter(token: token) else { return invalid("page_info") }
            filter = decoded
            fromToken = true
        } else {
            filter = ShopifyFilter()
            fromToken = false
            let dates: [(String, WritableKeyPath<ShopifyFilter, Double?>)] = [
                ("updated_at_min", \.updatedMin), ("updated_at_max", \.updatedMax),
                ("created_at_min", \.createdMin), ("created_at_max", \.createdMax),
            ]
            for (param, path) in dates {
                if let raw = r.query[param] {
                    guard let t = Self.parseTime(raw) else { return invalid(param) }
                    filter[keyPath: path] = t
                }
            }
            if let raw = r.query["since_id"] {
                guard let v = Int(raw) else { return invalid("since_id") }
                filter.sinceID = v
            }
            if let raw = r.query["ids"] {
                let ids = raw.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard ids.allSatisfy({ $0 != nil }) else { return invalid("ids") }
                filter.ids = ids.compactMap { $0 }
            }
        }
        let all = s.byId().filter { filter.matches($0, s.rec($0)!) }  // by id, ascending
        let page: ArraySlice<Int>
        if fromToken && filter.direction == "prev" {
            page = all.filter { Self.shopifyProductBase + $0 < filter.anchor }.suffix(limit)
        } else if fromToken {
            page = all.filter { Self.shopifyProductBase + $0 > filter.anchor }.prefix(limit)
        } else {
            page = all.prefix(limit)
        }
        let fields = r.query["fields"].map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
        var body = #"{"products":["#
        for (i, n) in page.enumerated() {
            let rec = s.rec(n)!
            if i > 0 { body += "," }
            let all: [(String, String)] = [
                ("id", "\(Self.shopifyProductBase + n)"), ("title", Self.q(Self.name(n, rec))), ("handle", "\"item-\(n)\""),
                ("status", "\"active\""), ("created_at", "\"\(Self.timestamp(Self.epochBase + rec.created, .shopify))\""),
                ("updated_at", "\"\(Self.timestamp(Self.epochBase + rec.version, .shopify))\""),
            ]
            body += "{" + all.filter { fields == nil || fields!.contains($0.0) }.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
        }
        body += "]}"
        var links: [String] = []
        func link(_ direction: String, _ anchor: Int) -> String {
            var f = filter
            f.direction = direction
            f.anchor = anchor
            var query = "limit=\(limit)"
            if let raw = r.query["fields"] { query += "&fields=" + Query.encode(raw) }
            return "<\(baseURL)\(Self.shopifyPath)?\(query)&page_info=\(f.token())>; rel=\"\(direction == "next" ? "next" : "previous")\""
        }
        if let first = page.first, fromToken, all.contains(where: { $0 < first }) {
            links.append(link("prev", Self.shopifyProductBase + first))
        }
        if let last = page.last, all.contains(where: { $0 > last }) {
            links.append(link("next", Self.shopifyProductBase + last))
        }
        return Self.reply(200, body, links.isEmpty ? [] : [("Link", links.joined(separator: ", "))])
    }

    // MARK: Zendesk

    static func zendeskError(_ description: String, error: String = "InvalidPaginationParameter") -> Response {
        reply(400, #"{"error":"\#(error)","description":\#(q(description))}"#)
    }

    func zendeskTicket(_ n: Int, _ rec: Rec, padding: String = "") -> String {
        let t = Self.epochBase + rec.version
        var out = #"{"id":\#(n),"url":"\#(baseURL)/api/v2/tickets/\#(n).json","subject":\#(Self.q(Self.name(n, rec))),"status":"open","#
        out += #""created_at":"\#(Self.iso(Self.epochBase + rec.created))","updated_at":"\#(Self.iso(t))","generated_timestamp":\#(t)"#
        return out + padding + "}"
    }

    /// The start_time of a zendesk request: an integer not in the future; the error response otherwise.
    func zendeskStart(_ r: Req, _ s: Store) -> Outcome<Int> {
        guard let raw = r.query["start_time"] else {
            return .failure(ResponseError(Self.zendeskError("start_time is required")))
        }
        guard let start = Int(raw), start >= 0 else {
            return .failure(ResponseError(Self.zendeskError("start_time must be an integer epoch time")))
        }
        let now = max(Int(Date().timeIntervalSince1970), Self.epochBase + s.versions)
        guard start <= now else {
            return .failure(ResponseError(Self.zendeskError("start_time is in the future")))
        }
        return .success(start)
    }

    static func zendeskCursor(_ version: Int) -> String { b64url("\(epochBase + version)||\(version)|") }

    static func zendeskCursorVersion(_ cursor: String) -> Int? {
        guard let text = unb64url(cursor) else { return nil }
        let parts = text.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 4, let t = Int(parts[0]), let v = Int(parts[2]), t == epochBase + v, v >= 0 else { return nil }
        return v
    }

    func zendesk(_ r: Req, _ s: Store) -> Response {
        guard r.method == "GET" else { return Self.reply(404, #"{"error":"InvalidEndpoint","description":"Not found"}"#) }
        switch r.path {
        case "/api/v2/incremental/tickets.json": return zendeskTimeBased(r, s)
        case "/api/v2/incremental/tickets/cursor.json": return zendeskCursorBased(r, s)
        case "/api/v2/incremental/tickets.jsonl": return zendeskJSONL(r, s)
        default: return Self.reply(404, #"{"error":"InvalidEndpoint","description":"Not found"}"#)
        }
    }

    func zendeskTimeBased(_ r: Req, _ s: Store) -> Response {
        let start: Int
        switch zendeskStart(r, s) {
        case .success(let v): start = v
        case .failure(let e): return e.response
        }
        let perPage = size(r.query["per_page"], max: 1000)
        let all = s.byTime(since: Double(start))
        var page = Array(all.prefix(perPage))
        var end = page.last.map { Self.epochBase + s.rec($0)!.version } ?? start
        if page.count == perPage, end == start {
            // A full page all at start_time would never move on: it takes every item of that second,
            // and the next page starts after it.
            page = all.filter { Self.epochBase + s.rec($0)!.version == start }
            end = start + 1
        }
        var body = #"{"tickets":["#
        for (i, n) in page.enumerated() {
            if i > 0 { body += "," }
            body += zendeskTicket(n, s.rec(n)!)
        }
        let rest = r.query.encoded(dropping: ["start_time"])
        let next = "\(baseURL)\(r.path)?start_time=\(end)\(rest.isEmpty ? "" : "&" + rest)"
        body += #"],"next_page":"\#(next)","count":\#(page.count),"end_of_stream":\#(all.count < perPage),"end_time":\#(end)}"#
        return Self.reply(200, body)
    }

    func zendeskCursorBased(_ r: Req, _ s: Store) -> Response {
        var position: Int  // the page holds live items with versions after this
        let cursor = r.query["cursor"]
        if let cursor {
            guard let v = Self.zendeskCursorVersion(cursor) else { return Self.zendeskError("Invalid cursor") }
            position = v
        } else {
            let start: Int
            switch zendeskStart(r, s) {
            case .success(let v): start = v
            case .failure(let e): return e.response
            }
            position = Store.firstVersion(since: Double(start)) - 1
        }
        let perPage = size(r.query["per_page"], max: 1000)
        var page: [Int] = []
        var v = position + 1
        var lastVersion = position
        while v <= s.versions, page.count < perPage {
            if let n = s.live(version: v) {
                page.append(n)
                lastVersion = v
            }
            v += 1
        }
        var more = false
        while v <= s.versions, !more {
            more = s.live(version: v) != nil
            v += 1
        }
        let after = Self.zendeskCursor(lastVersion)
        let rest = r.query.encoded(dropping: ["start_time", "cursor"])
        func url(_ c: String) -> String { "\(baseURL)\(r.path)?cursor=\(c)\(rest.isEmpty ? "" : "&" + rest)" }
        var body = #"{"tickets":["#
        for (i, n) in page.enumerated() {
            if i > 0 { body += "," }
            body += zendeskTicket(n, s.rec(n)!)
        }
        body += #"],"after_url":"\#(url(after))","after_cursor":"\#(after)","#
        if let cursor {
            body += #""before_url":"\#(url(cursor))","before_cursor":"\#(cursor)","#
        } else {
            body += #""before_url":null,"before_cursor":null,"#
        }
        body += #""end_of_stream":\#(!more)}"#
        return Self.reply(200, body)
    }

    func zendeskJSONL(_ r: Req, _ s: Store) -> Response {
        let start: Int
        switch zendeskStart(r, s) {
        case .success(let v): start = v
        case .failure(let e): return e.response
        }
        let pad = padding
        let padField = pad > 0 ? #","body":""# + String(repeating: "x", count: pad) + "\"" : ""
        let first = Store.firstVersion(since: Double(start))
        var fields = HTTPFields()
        fields[.contentType] = "application/x-ndjson"
        return Response(status: .ok, headers: fields, body: ResponseBody { writer in
            var v = first
            var chunk = ""
            chunk.reserveCapacity(1 << 17)
            while v <= s.versions {
                if let n = s.live(version: v) {
                    chunk += self.zendeskTicket(n, s.rec(n)!, padding: padField)
                    chunk += "\n"
                    if chunk.utf8.count >= 1 << 16 {
                        try await writer.write(ByteBuffer(string: chunk))
                        chunk = ""
                        chunk.reserveCapacity(1 << 17)
                    }
                }
                v += 1
            }
            if !chunk.isEmpty { try await writer.write(ByteBuffer(string: chunk)) }
            try await writer.finish(nil)
        })
    }

    // MARK: GraphQL

    static func graphqlCursor(version: Int, n: Int) -> String { b64url("item:\(version):\(n)") }

    static func graphqlCursorParts(_ cursor: String) -> (version: Int, n: Int)? {
        guard let text = unb64url(cursor) else { return nil }
        let parts = text.split(separator: ":")
        guard parts.count == 3, parts[0] == "item", let v = Int(parts[1]), let n = Int(parts[2]) else { return nil }
        return (v, n)
    }

    func graphql(_ r: Req, _ s: Store) -> Response {
        guard r.path == "/graphql" else { return Self.reply(404, #"{"errors":[{"message":"Not Found"}]}"#) }
        guard r.method == "POST" else {
            return Self.reply(400, #"{"errors":[{"message":"GraphQL requests must be POSTed as JSON"}]}"#)
        }
        guard let json = try? parseJSON(r.body), case .object(let o) = json, let query = o["query"]?.stringValue, !query.isEmpty else {
            return Self.reply(400, #"{"errors":[{"message":"The body must be a JSON object with a \"query\""}]}"#)
        }
        func fail(_ message: String) -> Response { Self.reply(200, #"{"data":null,"errors":[{"message":\#(Self.q(message))}]}"#) }
        let variables = o["variables"]?.objectValue ?? [:]
        var first = min(pageSize, 100)
        if let v = variables["first"], !v.isNull {
            guard let f = v.intValue, f >= 0 else { return fail("first must be a non-negative integer") }
            first = min(f, 100)
        }
        var since: Double?
        if let v = variables["updatedSince"], !v.isNull {
            guard let text = v.stringValue, let t = Self.parseTime(text) else { return fail("invalid updatedSince") }
            since = t
        }
        var cursor: (version: Int, n: Int)?
        if let v = variables["after"], !v.isNull {
            guard let text = v.stringValue, let parts = Self.graphqlCursorParts(text) else { return fail("invalid cursor") }
            cursor = parts
        }
        var ns: [Int]
        if since != nil {
            // By updatedAt (then n: every version is distinct), after the cursor's version.
            ns = s.byTime(from: max(Store.firstVersion(since: since), (cursor?.version ?? 0) + 1))
        } else {
            let after = cursor?.n ?? 0
            ns = s.byId().filter { $0 > after }
        }
        let page = ns.prefix(first)
        var body = #"{"data":{"items":{"nodes":["#
        for (i, n) in page.enumerated() {
            let rec = s.rec(n)!
            if i > 0 { body += "," }
            body += #"{"id":"gid://fixture/Item/\#(n)","name":\#(Self.q(Self.name(n, rec))),"updatedAt":"\#(Self.iso(Self.epochBase + rec.version))"}"#
        }
        let end = page.last.map { #""\#(Self.graphqlCursor(version: s.rec($0)!.version, n: $0))""# } ?? "null"
        body += #"],"pageInfo":{"hasNextPage":\#(ns.count > page.count),"endCursor":\#(end)}}}}"#
        return Self.reply(200, body, contentType: "application/json")
    }

    // MARK: Parent and child

    func parentChild(_ r: Req, _ s: Store) -> Response {
        guard r.method == "GET" else { return Self.reply(404, #"{"error":"not found"}"#) }
        let perPage = size(r.query["per_page"], max: 100)
        let page = max(1, r.query["page"].flatMap { Int($0) } ?? 1)
        if r.path == "/accounts" {
            let ns = s.byId()
            let lo = (page - 1) * perPage
            let slice = lo < ns.count ? ns[lo..<min(ns.count, lo + perPage)] : []
            var body = #"{"accounts":["#
            for (i, n) in slice.enumerated() {
                let rec = s.rec(n)!
                if i > 0 { body += "," }
                body += #"{"id":"acc_\#(n)","name":\#(Self.q(Self.name(n, rec))),"updated_at":"\#(Self.iso(Self.epochBase + rec.version))"}"#
            }
            return Self.reply(200, body + "]}")
        }
        let parts = r.path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[1] == "accounts", parts[3] == "contacts" else { return Self.reply(404, #"{"error":"not found"}"#) }
        let accountID = String(parts[2])
        guard accountID.hasPrefix("acc_"), let n = Int(accountID.dropFirst(4)), "acc_\(n)" == accountID, s.rec(n) != nil else {
            return Self.reply(404, #"{"error":"account not found"}"#)
        }
        var since: Double?
        if let raw = r.query["updated_since"] {
            guard let t = Self.parseTime(raw) else { return Self.reply(400, #"{"error":"invalid updated_since"}"#) }
            since = t
        }
        var contacts: [(id: Int, version: Int)] = []
        let m = s.contactCount(account: n)
        if m > 0 {
            for k in 1...m {
                guard let v = s.contactVersion(account: n, id: k) else { continue }
                if let since, Double(Self.epochBase + v) < since { continue }
                contacts.append((k, v))
            }
        }
        let lo = (page - 1) * perPage
        let slice = lo < contacts.count ? contacts[lo..<min(contacts.count, lo + perPage)] : []
        var body = #"{"contacts":["#
        for (i, c) in slice.enumerated() {
            if i > 0 { body += "," }
            body += #"{"id":\#(c.id),"account_id":"acc_\#(n)","email":"\#(Self.contactEmail(account: n, id: c.id))","#
            body += #""updated_at":"\#(Self.iso(Self.epochBase + c.version))"}"#
        }
        return Self.reply(200, body + "]}")
    }
}

extension FixtureAPI {
/// A decoded query string, in order (`+` is a space; `%5B` a `[`).
struct Query: Sendable {
    struct Pair: Sendable {
        var name: String
        var value: String
    }

    var pairs: [Pair]

    init(_ raw: String) {
        pairs = raw.split(separator: "&").map { part in
            if let eq = part.firstIndex(of: "=") {
                return Pair(name: Self.decode(part[..<eq]), value: Self.decode(part[part.index(after: eq)...]))
            }
            return Pair(name: Self.decode(part), value: "")
        }
    }

    subscript(name: String) -> String? { pairs.first { $0.name == name }?.value }

    static func decode(_ s: Substring) -> String {
        let spaced = s.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func encode(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: unreserved) ?? s }

    /// The query re-encoded without `dropping`.
    func encoded(dropping: Set<String> = []) -> String {
        pairs.filter { !dropping.contains($0.name) }.map { Self.encode($0.name) + "=" + Self.encode($0.value) }.joined(separator: "&")
    }

    /// The query re-encoded with `name` set to `value` (in its place, else at the end).
    func encoded(setting name: String, to value: String) -> String {
        var out: [Pair] = []
        var set = false
        for p in pairs {
            if p.name == name {
                if !set { out.append(Pair(name: name, value: value)) }
                set = true
            } else {
                out.append(p)
            }
        }
        if !set { out.append(Pair(name: name, value: value)) }
        return out.map { Self.encode($0.name) + "=" + Self.encode($0.value) }.joined(separator: "&")
    }
}
}
