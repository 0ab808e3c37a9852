import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// An OAuth2 provider for tests, over real HTTP on loopback: a token endpoint and an API
/// that accepts only a current access token.
///
/// - `POST /token`: the `client_credentials` grant and the `refresh_token` grant (RFC 6749),
///   client authentication by HTTP Basic or in the form. Access tokens live `tokenLifetime`
///   seconds (2 by default). Refresh tokens rotate on every use; presenting one already
///   used revokes its whole family (as Salesforce and Okta do) and answers `invalid_grant`.
/// - `GET /api/items?offset=O&limit=N`: `{"items": [...], "next": "/api/items?…"|null}`
///   for a valid bearer token, else `401`.
public final class FixtureOAuth2: Sendable {
    public struct Refresh: Sendable {
        public var family: Int
        public var started: ContinuousClock.Instant
        public var ended: ContinuousClock.Instant
        public var outcome: String
    }

    struct Family {
        var current: String
        var used: Set<String> = []
        var usedAt: [String: ContinuousClock.Instant] = [:]
        var revoked = false
    }

    struct State {
        var families: [Int: Family] = [:]
        var byToken: [String: Int] = [:]
        /// access token → (expiry, family or nil for client credentials)
        var access: [String: (expires: ContinuousClock.Instant, family: Int?)] = [:]
        var refreshes: [Refresh] = []
        var inFlight: [Int: Int] = [:]
        var mostAtOnce = 0
        var reuses = 0
        var reuseGaps: [Duration] = []
        var clientGrants = 0
        /// Per API request: "ok", "expired", "unknown", "missing".
        var apiOutcomes: [String] = []
        var items = 0
        var nextFamily = 1
        var counter = 0
        /// Answers given instead of the token endpoint's own, in order.
        var scripted: [(status: Int, body: String, headers: [(String, String)])] = []
        var tokenRequests: [ContinuousClock.Instant] = []
    }

    public let clientID: String
    public let clientSecret: String
    public let tokenLifetime: Double
    /// How long the token endpoint takes to answer (a window for refresh races).
    public let tokenDelay: Duration
    /// How long the API takes to answer a page.
    public let apiDelay: Duration
    let state = Mutex(State())
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let portValue = Mutex(0)
    public var port: Int { portValue.withLock { $0 } }
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var tokenURL: String { baseURL + "/token" }

    public init(items: Int = 0, clientID: String = "fixture-client", clientSecret: String = "fixture-secret-\(UUID().uuidString.prefix(8))",
                tokenLifetime: Double = 2, tokenDelay: Duration = .milliseconds(50), apiDelay: Duration = .zero) {
        self.apiDelay = apiDelay
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.tokenLifetime = tokenLifetime
        self.tokenDelay = tokenDelay
        state.withLock { $0.items = items }
    }

    // MARK: Test controls

    /// A new refresh token (a new family), as a user's consent would grant.
    public func grantRefreshToken() -> String {
        state.withLock { s in
            let family = s.nextFamily
            s.nextFamily += 1
            let token = Self.mint("rt", &s.counter)
            s.families[family] = Family(current: token)
            s.byToken[token] = family
            return token
        }
    }

    /// Revokes every family and access token (the user disconnected the app).
    public func revokeEverything() {
        state.withLock { s in
            for key in s.families.keys { s.families[key]?.revoked = true }
            s.access.removeAll()
        }
    }

    /// Forgets every access token (the provider restarted or revoked sessions); refresh
    /// tokens still work.
    public func forgetAccessTokens() { state.withLock { $0.access.removeAll() } }

    /// The next token requests get these answers instead (a hostile or broken endpoint).
    public func answerNext(status: Int, body: String, headers: [(String, String)] = [], times: Int = 1) {
        state.withLock { s in for _ in 0..<times { s.scripted.append((status, body, headers)) } }
    }

    /// When each token request arrived.
    public var tokenRequestTimes: [ContinuousClock.Instant] { state.withLock { $0.tokenRequests } }

    public func setItems(_ count: Int) { state.withLock { $0.items = count } }
    public var refreshes: [Refresh] { state.withLock { $0.refreshes } }
    /// The most refresh-grant requests the endpoint had in flight at once, for any one family.
    public var mostRefreshesAtOnce: Int { state.withLock { $0.mostAtOnce } }
    /// How many times an already-used refresh token was presented.
    public var reuses: Int { state.withLock { $0.reuses } }
    /// For each reuse, how long after the token's first use it came.
    public var reuseGaps: [Duration] { state.withLock { $0.reuseGaps } }
    public var clientGrants: Int { state.withLock { $0.clientGrants } }
    public var apiOutcomes: [String] { state.withLock { $0.apiOutcomes } }
    /// Whether any family was revoked by a reuse.
    public func isRevoked(family: Int) -> Bool { state.withLock { $0.families[family]?.revoked ?? false } }
    /// Every secret this provider handed out or holds (for tests that search for them).
    public var everySecret: [String] {
        state.withLock { s in [clientSecret] + s.families.values.flatMap { [$0.current] + $0.used } + s.access.keys }
    }

    static func mint(_ prefix: String, _ counter: inout Int) -> String {
        counter += 1
        return "\(prefix)-\(counter)-\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased())"
    }

    // MARK: Server

    public func start() async throws {
        let router = Router()
        router.post("/token") { request, _ in try await self.token(request) }
        router.get("/api/items") { request, _ in
            if self.apiDelay > .zero { try await Task.sleep(for: self.apiDelay) }
            return self.items(request)
        }
        let (running, bound) = await startLoopback(router, host: "127.0.0.1", label: "fixture-oauth2")
        task.withLock { $0 = running }
        portValue.withLock { $0 = bound }
    }

    public func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        _ = try? await t?.value
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                 body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func form(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            let value = parts.count > 1 ? (String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "") : ""
            out[name] = value
        }
        return out
    }

    func token(_ request: Request) async throws -> Response {
        let scripted = state.withLock { s -> (status: Int, body: String, headers: [(String, String)])? in
            s.tokenRequests.append(.now)
            return s.scripted.isEmpty ? nil : s.scripted.removeFirst()
        }
        if let scripted {
            var headers: HTTPFields = [.contentType: "application/json"]
            for (name, value) in scripted.headers { if let field = HTTPField.Name(name) { headers[field] = value } }
            return Response(status: .init(code: scripted.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: scripted.body)))
        }
        var request = request
        let body = try await request.collectBody(upTo: 64 * 1024)
        let form = Self.form(String(buffer: body))
        var id = form["client_id"], secret = form["client_secret"]
        if let auth = request.headers[.authorization], auth.hasPrefix("Basic "),
           let decoded = Data(base64Encoded: String(auth.dropFirst(6))).map({ String(decoding: $0, as: UTF8.self) }),
           let colon = decoded.firstIndex(of: ":") {
            id = String(decoded[..<colon]).removingPercentEncoding
            secret = String(decoded[decoded.index(after: colon)...]).removingPercentEncoding
        }
        guard id == clientID, secret == clientSecret else {
            return Self.json(.unauthorized, #"{"error":"invalid_client","error_description":"client authentication failed"}"#)
        }
        switch form["grant_type"] {
        case "client_credentials":
            try await Task.sleep(for: tokenDelay)
            let access = state.withLock { s in
                s.clientGrants += 1
                let token = Self.mint("at", &s.counter)
                s.access[token] = (.now + .milliseconds(Int(tokenLifetime * 1000)), nil)
                return token
            }
            return Self.json(.ok, #"{"access_token":"\#(access)","token_type":"Bearer","expires_in":\#(tokenLifetime)}"#)
        case "refresh_token":
            let presented = form["refresh_token"] ?? ""
            let started = ContinuousClock.now
            let family = state.withLock { s -> Int? in
                guard let family = s.byToken[presented] else { return nil }
                s.inFlight[family, default: 0] += 1
                s.mostAtOnce = max(s.mostAtOnce, s.inFlight[family] ?? 0)
                return family
            }
            guard let family else {
                return Self.json(.badRequest, #"{"error":"invalid_grant","error_description":"unknown refresh token"}"#)
            }
            try await Task.sleep(for: tokenDelay)
            let answer = state.withLock { s -> (String, String)? in
                defer { s.inFlight[family, default: 1] -= 1 }
                guard var f = s.families[family] else { return nil }
                var outcome = "rotated"
                var result: (String, String)?
                if f.revoked {
                    outcome = "revoked"
                } else if f.current != presented {
                    // An old refresh token again: the whole family goes (reuse detection).
                    s.reuses += 1
                    if let first = f.usedAt[presented] { s.reuseGaps.append(started - first) }
                    f.revoked = true
                    s.access = s.access.filter { $0.value.family != family }
                    outcome = "reuse"
                } else {
                    f.used.insert(presented)
                    f.usedAt[presented] = started
                    let next = Self.mint("rt", &s.counter)
                    f.current = next
                    s.byToken[next] = family
                    let access = Self.mint("at", &s.counter)
                    s.access[access] = (.now + .milliseconds(Int(tokenLifetime * 1000)), family)
                    result = (access, next)
                }
                s.families[family] = f
                s.refreshes.append(Refresh(family: family, started: started, ended: .now, outcome: outcome))
                return result
            }
            guard let (access, next) = answer else {
                return Self.json(.badRequest, #"{"error":"invalid_grant","error_description":"the refresh token was revoked"}"#)
            }
            return Self.json(.ok, #"{"access_token":"\#(access)","token_type":"bearer","expires_in":\#(tokenLifetime),"refresh_token":"\#(next)"}"#)
        default:
            return Self.json(.badRequest, #"{"error":"unsupported_grant_type"}"#)
        }
    }

    func items(_ request: Request) -> Response {
        let auth = request.headers[.authorization] ?? ""
        let token = auth.hasPrefix("Bearer ") ? String(auth.dropFirst(7)) : nil
        let (outcome, total) = state.withLock { s -> (String, Int) in
            let outcome: String
            if let token {
                if let entry = s.access[token] { outcome = entry.expires > .now ? "ok" : "expired" } else { outcome = "unknown" }
            } else {
                outcome = "missing"
            }
            s.apiOutcomes.append(outcome)
            return (outcome, s.items)
        }
        guard outcome == "ok" else { return Self.json(.unauthorized, #"{"error":"invalid_token"}"#) }
        let query = request.uri.queryParameters
        let offset = query["offset"].flatMap { Int($0) } ?? 0
        let limit = query["limit"].flatMap { Int($0) } ?? 10
        let end = min(total, offset + limit)
        let rows = offset < end ? (offset..<end).map { #"{"id":\#($0 + 1),"name":"item-\#($0 + 1)"}"# } : []
        let next = end < total ? #""/api/items?offset=\#(end)&limit=\#(limit)""# : "null"
        return Self.json(.ok, #"{"items":[\#(rows.joined(separator: ","))],"next":\#(next)}"#)
    }
}
