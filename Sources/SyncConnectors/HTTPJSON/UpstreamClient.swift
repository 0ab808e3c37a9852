import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import SyncCore

/// Fetches upstream pages: one shared AsyncHTTPClient (connection reuse, gzip/deflate),
/// the egress policy checked on every request and every redirect, and the in-attempt
/// request retries of docs/api.md (connection errors, timeouts, 408, 429, 5xx; `Retry-After`
/// honoured as a floor). Cancelling the calling task aborts the request in flight.
public final class UpstreamClient: Sendable {
    let http: HTTPClient
    public let egress: EgressPolicy
    let random: @Sendable () -> Double
    let metrics: TributaryMetrics
    /// The longest `Retry-After` waited for inside an attempt; a longer one fails the
    /// attempt (retryable, with that delay) so the sync's retry policy takes over.
    let maxRetryAfterWait: Double = 120
    /// The longest an attempt waits for a closed key inside its worker; a longer closure
    /// hands the sync back to the queue (``GateClosed``), so a closed key costs its own
    /// syncs, not the node's workers.
    public static let longestHeldPause: Double = 1
    static let maxRedirects = 5

    public init(egress: EgressPolicy = .default, metrics: TributaryMetrics = .discarding(),
                random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // Bodies are inflated by ContentDecoding: every gzip member, and nothing after the end.
        configuration.decompression = .disabled
        configuration.timeout = .init(connect: .seconds(10))
        configuration.connectionPool = .init(idleTimeout: .seconds(60))
        // A refused connection surfaces at once; the in-attempt retries (with backoff) retry it.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.guardStatusLines()
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.egress = egress
        self.metrics = metrics
        self.random = random
    }

    /// Closes the connection pool.
    public func shutdown() async throws { try await http.shutdown() }

    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: [UInt8]
        public var url: URL
        /// The credential's secret values this request carried (to mask in what it answered).
        public var sentSecrets: [String] = []
        /// The body still to be read, when it was asked for as a stream (and came unencoded):
        /// `body` is then empty.
        public var stream: HTTPClientResponse.Body?
    }

    /// GETs `url` with the in-attempt retries; returns a 2xx response or throws a ``SyncError``.
    ///
    /// With a `gate`, every request first waits for the key's budget, and an upstream that
    /// asks for a pause (``closeSignal(status:headers:now:)``) closes the key on every node:
    /// the request is then sent again once it reopens, without counting as a retry.
    ///
    /// With a `credential`, its authorization goes with every request to the source URL's
    /// origin; a `401` asks it once for a new one (an OAuth2 refresh) and sends the request
    /// again, without counting as a retry.
    ///
    /// With a `body`, the request is a `POST` of that JSON (a search endpoint, GraphQL).
    ///
    /// With `stream`, a 2xx answer without a content coding comes back with its body unread
    /// (``Response/stream``), for the caller to read in bounded pieces.
    public func get(_ url: URL, body: [UInt8]? = nil, stream: Bool = false, config: HTTPJSONConfig, gate: (any RequestGate)?,
                    credential: (any CredentialSupplier)? = nil) async throws -> Response {
        var attempt = 0
        var reauthorized: RequestAuthorization?
        while true {
            try Task.checkCancellation()
            let failure: SyncError
            do {
                let authorization = if let reauthorized { reauthorized } else { try await credential?.authorization() }
                if let gate { try await gate.acquire(maxWait: min(config.timeoutSeconds, Self.longestHeldPause)) }
                // timeout_seconds bounds the whole request: headers, body and redirects. An upstream
                // that sends its headers and then a byte a second is cut off like a silent one.
                let response = try await withDeadline(.milliseconds(Int64(config.timeoutSeconds * 1000)),
                                                      onTimeout: { HTTPClientError.deadlineExceeded }) {
                    try await self.fetchFollowingRedirects(url, body: body, stream: stream, config: config, authorization: authorization)
                }
                if let gate, let until = Self.closeSignal(status: response.status, headers: response.headers) {
                    await gate.close(until: until)
                }
                if response.status == 401, reauthorized == nil, let credential, let authorization,
                   let fresh = try await credential.reauthorize(after: authorization) {
                    reauthorized = fresh
                    continue
                }
                reauthorized = nil
                switch response.status {
                case 200..<300:
                    var response = response
                    response.sentSecrets = authorization?.secretValues ?? []
                    return response
                case 401, 403:
                    throw SyncError(.upstreamAuthFailed, "HTTP \(response.status) from upstream", retryable: false, httpStatus: response.status)
                case 408, 429, 500...599:
                    let retryAfter = Self.retryAfter(response.headers.first(name: "retry-after"))
                    throw SyncError(response.status == 429 ? .upstreamRateLimited : (response.status == 408 ? .upstreamTimeout : .upstreamUnavailable),
                                    "HTTP \(response.status) from upstream", retryable: true, httpStatus: response.status, retryAfterSeconds: retryAfter)
                default:
                    throw SyncError(.upstreamClientError, "HTTP \(response.status) from upstream", retryable: false, httpStatus: response.status)
                }
            } catch let e as SyncError {
                failure = e
            } catch let closed as GateClosed {
                throw closed
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                failure = Self.classify(error, timeout: config.timeoutSeconds)
            }
            // Every retry counts against max_request_retries, a pause the upstream asked for too,
            // and waits at least the backoff: no answer, however short its Retry-After, turns
            // into a burst of requests.
            guard failure.retryable, attempt < config.maxRequestRetries else { throw failure }
            // The upstream named a time to come back and the key is closed until then (cut to
            // retry.max_delay_seconds): the gate waits for it, or hands the sync back.
            let paused = gate != nil && (failure.httpStatus == 429 || failure.httpStatus == 503) && (failure.retryAfterSeconds ?? 0) > 0
            if !paused, let after = failure.retryAfterSeconds, after > maxRetryAfterWait { throw failure }
            attempt += 1
            metrics.upstreamRetry()
            let delay = Self.retryDelay(retry: attempt, backoff: config.requestBackoffSeconds,
                                        retryAfter: paused ? nil : failure.retryAfterSeconds, random: random())
            try await Task.sleep(for: .milliseconds(Int64(max(delay, Self.rateLimitFloor(failure)) * 1000)))
        }
    }

    /// The least wait after an answer that says the upstream is overwhelmed (`429`, `503`):
    /// a second, whatever `request_backoff_seconds` or `retry.max_delay_seconds` say, so no
    /// configuration meets it with a burst; `0` after anything else.
    public static func rateLimitFloor(_ error: SyncError) -> Double {
        error.httpStatus == 429 || error.httpStatus == 503 ? 1 : 0
    }

    /// The wait before in-attempt retry `retry` (from 1): at least `backoff`, up to twice
    /// the previous retry's bound (at most 30 s), and at least `retryAfter`.
    static func retryDelay(retry: Int, backoff: Double, retryAfter: Double?, random: Double) -> Double {
        let cap = max(backoff, min(30, backoff * pow(2, Double(min(retry, 30) - 1))))
        return max(retryAfter ?? 0, backoff + (cap - backoff) * min(max(random, 0), 1))
    }

    /// One request, following up to five redirects, each target vetted by the egress policy.
    ///
    /// `follow_redirects` decides what a redirect may take along: `same-origin` (the default)
    /// follows every redirect but sends the configured headers only to the source URL's own
    /// origin (scheme, host and port: `config.url`, whatever named this request, a next link,
    /// a `Link` header or a redirect), so an `Authorization` never reaches a host it was not
    /// written for; `any` sends them to every hop; `none` follows no redirect (the 3xx fails
    /// the attempt as `upstream_client_error`). No cookies are kept or sent. The response's
    /// `url` is the URL that served it (the last hop).
    ///
    /// A credential's authorization goes only to the source URL's origin, whatever
    /// `follow_redirects` says.
    ///
    /// A POST keeps its method and body through a 307 or 308 and becomes a GET without a
    /// body through a 301, 302 or 303 (RFC 9110 §15.4).
    func fetchFollowingRedirects(_ start: URL, body startBody: [UInt8]? = nil, stream: Bool = false, config: HTTPJSONConfig,
                                 authorization: RequestAuthorization? = nil) async throws -> Response {
        var url = start
        var body = startBody
        let origin = Self.origin(of: config.url)
        for _ in 0...Self.maxRedirects {
            let sameOrigin = Self.origin(of: url) == origin
            let withHeaders = config.followRedirects == .any || sameOrigin
            let response = try await fetchOnce(url, body: body, stream: stream, config: config, configuredHeaders: withHeaders,
                                               authorization: sameOrigin ? authorization : nil)
            guard [301, 302, 303, 307, 308].contains(response.status) else { return response }
            guard config.followRedirects != .none else {
                throw SyncError(.upstreamClientError, "HTTP \(response.status) redirect, and follow_redirects is none", retryable: false, httpStatus: response.status)
            }
            guard let location = response.headers.first(name: "location"), let next = HTTPURL.parse(location, relativeTo: url) else {
                throw SyncError(.upstreamClientError, "HTTP \(response.status) redirect to a missing or non-HTTP location", retryable: false, httpStatus: response.status)
            }
            url = next
            if response.status != 307, response.status != 308 { body = nil }
        }
        throw SyncError(.upstreamClientError, "more than \(Self.maxRedirects) redirects", retryable: false)
    }

    /// Scheme, host and effective port: what "same origin" compares (RFC 6454).
    static func origin(of url: URL) -> String {
        let scheme = url.scheme?.lowercased() ?? ""
        return "\(scheme)://\(url.host?.lowercased() ?? ""):\(url.port ?? (scheme == "https" ? 443 : 80))"
    }

    func fetchOnce(_ target: URL, body requestBody: [UInt8]? = nil, stream: Bool = false, config: HTTPJSONConfig, configuredHeaders: Bool,
                   authorization: RequestAuthorization? = nil) async throws -> Response {
        let url = authorization?.apply(to: target) ?? target
        guard let host = url.host, let scheme = url.scheme?.lowercased() else {
            throw SyncError(.configInvalid, "not an absolute URL", retryable: false)
        }
        var request = try await vettedRequest(url, host: host, scheme: scheme)
        request.method = requestBody == nil ? .GET : .POST
        if let requestBody {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: requestBody))
        }
        request.headers.add(name: "Accept", value: config.format == .jsonl ? "application/x-ndjson, application/jsonl, application/json" : "application/json")
        // JSON Lines is read as a stream, which a compressed answer cannot be (it is read whole).
        request.headers.add(name: "Accept-Encoding", value: stream ? "identity" : "gzip, deflate")
        request.headers.add(name: "User-Agent", value: "tributary/1")
        if configuredHeaders {
            for (name, value) in config.headers { request.headers.replaceOrAdd(name: name, value: value) }
        }
        for pair in authorization?.headers ?? [] { request.headers.replaceOrAdd(name: pair.name, value: pair.value) }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .milliseconds(Int64(config.timeoutSeconds * 1000)))
        } catch {
            metrics.upstreamRequest(codeClass: "error")
            throw error
        }
        let status = Int(response.status.code)
        metrics.upstreamRequest(codeClass: (100...599).contains(status) ? "\(status / 100)xx" : "other")
        let encoded = response.headers["content-encoding"].contains { !$0.trimmingCharacters(in: [" ", "\t"]).lowercased().elementsEqual("identity") }
        if stream, (200..<300).contains(status), !encoded {
            return Response(status: status, headers: response.headers, body: [], url: target, stream: response.body)
        }
        var body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: config.maxPageBytes)
        } catch is NIOTooManyBytesError {
            throw SyncErrorFactory.invalidResponse("the page is larger than max_page_bytes (\(config.maxPageBytes))", status: status)
        }
        let raw = body.readBytes(length: body.readableBytes) ?? []
        // Only a page's body is read; an error's or a redirect's is not inflated (a 503 with a
        // broken body stays a retryable 503).
        // The URL as named, without the credential's query parameter: it resolves relative
        // links and may be shown, and must not carry the key.
        guard (200..<300).contains(status) else { return Response(status: status, headers: response.headers, body: raw, url: target) }
        let decoded: [UInt8]
        do {
            decoded = try ContentDecoding.decode(raw, encodings: response.headers["content-encoding"], limit: config.maxPageBytes)
        } catch {
            throw SyncErrorFactory.invalidResponse("\(error)", status: status)
        }
        return Response(status: status, headers: response.headers, body: decoded, url: target)
    }

    /// A request to `url` once the egress policy has vetted its host: for plain HTTP it goes
    /// to the vetted address itself (with the name in `Host`), so a second resolution of the
    /// name cannot send it elsewhere.
    func vettedRequest(_ url: URL, host: String, scheme: String) async throws -> HTTPClientRequest {
        guard HTTPURL.isUsable(url) else {
            throw SyncError(.configInvalid, "not an absolute http(s) URL with a port in 1...65535", retryable: false)
        }
        let port = url.port ?? (scheme == "https" ? 443 : 80)
        let address = try await egress.vet(host: host, port: port)
        var request = HTTPClientRequest(url: url.absoluteString)
        if scheme == "http", var components = URLComponents(url: url, resolvingAgainstBaseURL: false) {
            let literal = EgressPolicy.format(address)
            components.host = address.count == 16 ? "[\(literal)]" : literal
            components.percentEncodedHost = address.count == 16 ? "[\(literal)]" : literal
            request = HTTPClientRequest(url: components.string ?? url.absoluteString)
            // An IPv6 literal keeps its brackets in Host (RFC 9110 §7.2).
            let hostText = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
            request.headers.add(name: "Host", value: url.port.map { "\(hostText):\($0)" } ?? hostText)
        }
        return request
    }

    /// POSTs a JSON `body` to `url` once (no redirects, no retries: the caller's outbox
    /// retries), under the egress policy, within `timeout` seconds for the whole exchange.
    /// Returns the response status; throws a ``SyncError`` when there was no response.
    public func post(_ url: URL, body: [UInt8], headers: [(String, String)], timeout: Double) async throws -> Int {
        do {
            return try await postOnce(url, contentType: "application/json", body: ByteBuffer(bytes: body), headers: headers, timeout: timeout) { response in
                // The status line is the answer. The body is not read: a receiver that sends
                // "200" at once and then its body slowly has answered (waiting for the body
                // made such a try "no answer", POSTed again and again). Left unread, the
                // response is dropped and its connection closed.
                Int(response.status.code)
            }
        } catch let error as SyncError {
            throw error
        } catch let invalid as InvalidStatusLine {
            // An answer all the same, and not a 2xx: the delivery's retries take it from here.
            return Int(invalid.code)
        } catch let parser as HTTPParserError where Self.notHTTP(parser) {
            // A receiver that does not speak HTTP now may later: a failed try, retried.
            throw SyncError(.invalidResponse, "the receiver's answer is not HTTP/1.1", retryable: true)
        } catch {
            throw Self.classify(error, timeout: timeout, peer: "the receiver")
        }
    }

    /// One POST of `body` to `url` under the egress policy, no redirects, `timeout` seconds
    /// for the whole exchange (reading the answer with `read` included).
    private func postOnce<T: Sendable>(_ url: URL, contentType: String, body: ByteBuffer, headers: [(String, String)], timeout: Double,
                                       read: @escaping @Sendable (HTTPClientResponse) async throws -> T) async throws -> T {
        guard let host = url.host, let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw SyncError(.configInvalid, "not an absolute http(s) URL", retryable: false)
        }
        return try await withDeadline(.milliseconds(Int64(timeout * 1000)), onTimeout: { HTTPClientError.deadlineExceeded }) {
            var request = try await self.vettedRequest(url, host: host, scheme: scheme)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: contentType)
            request.headers.add(name: "User-Agent", value: "tributary/1")
            for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
            request.body = .bytes(body)
            return try await read(try await self.http.execute(request, timeout: .milliseconds(Int64(timeout * 1000))))
        }
    }

    /// POSTs an `application/x-www-form-urlencoded` body to `url` once (a token endpoint):
    /// no redirects, no retries, under the egress policy, within `timeout` seconds for the
    /// whole exchange; the answer's body is read up to 256 KiB. Throws a ``SyncError`` when
    /// there was no answer.
    public func postForm(_ url: URL, form: [(String, String)], headers: [(String, String)], timeout: Double) async throws -> Response {
        let body = form.map { QueryString.encode($0.0) + "=" + QueryString.encode($0.1) }.joined(separator: "&")
        do {
            return try await postOnce(url, contentType: "application/x-www-form-urlencoded", body: ByteBuffer(string: body),
                                      headers: [("Accept", "application/json")] + headers, timeout: timeout) { response in
                var buffer: ByteBuffer
                do {
                    buffer = try await response.body.collect(upTo: 256 * 1024)
                } catch is NIOTooManyBytesError {
                    throw SyncErrorFactory.invalidResponse("the token endpoint's answer is larger than 256 KiB", status: Int(response.status.code))
                }
                return Response(status: Int(response.status.code), headers: response.headers,
                                body: buffer.readBytes(length: buffer.readableBytes) ?? [], url: url)
            }
        } catch let error as SyncError {
            throw error
        } catch {
            throw Self.classify(error, timeout: timeout, peer: "the token endpoint")
        }
    }

    /// Whether the parser refused the answer's status line, headers or framing as not HTTP
    /// (as opposed to a connection that ended mid-answer): a header past the parser's limit,
    /// an obsolete folded line, a NUL or other bytes a header may not hold, a length or chunk
    /// size that does not parse. The same bytes would fail again.
    static func notHTTP(_ error: HTTPParserError) -> Bool {
        [HTTPParserError.invalidStatus, .invalidVersion, .invalidConstant, .invalidCharactersUsed, .headerOverflow,
         .invalidHeaderToken, .lfExpected, .invalidContentLength, .unexpectedContentLength,
         .invalidChunkSize, .strictModeAssertion].contains(error)
    }

    /// Connection errors, timeouts: retryable; the message never includes headers or secrets,
    /// and names the other end as `peer` ("the upstream", "the receiver").
    static func classify(_ error: any Error, timeout: Double, peer: String = "the upstream") -> SyncError {
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout, .tlsHandshakeTimeout:
                return SyncError(.upstreamTimeout, "\(peer) did not answer within \(timeout) s", retryable: true)
            case .remoteConnectionClosed:
                return SyncErrorFactory.unavailable("\(peer) closed the connection")
            default:
                return SyncErrorFactory.unavailable("HTTP client error: \(e.description)")
            }
        }
        if let invalid = error as? InvalidStatusLine {
            return SyncErrorFactory.invalidResponse("\(invalid)", status: nil)
        }
        if let parser = error as? HTTPParserError, Self.notHTTP(parser) {
            // Not HTTP (a status of four digits, a missing code, a tab in the status line): the
            // same bytes would fail again. A body cut short stays a retryable connection fault.
            return SyncErrorFactory.invalidResponse("the answer is not HTTP/1.1 (\(parser))", status: nil)
        }
        let text = String(describing: error)
        if text.contains("connectTimeout") || text.contains("timeout") {
            return SyncError(.upstreamTimeout, "connecting to \(peer) timed out", retryable: true)
        }
        if text.contains("refused") || text.contains("ECONNREFUSED") {
            return SyncErrorFactory.unavailable("\(peer) refused the connection")
        }
        if text.contains("reset") || text.contains("ECONNRESET") || text.contains("EPIPE") {
            return SyncErrorFactory.unavailable("\(peer) reset the connection")
        }
        return SyncErrorFactory.unavailable("cannot reach \(peer): \(type(of: error))")
    }
}
