import Foundation
import Synchronization
import SyncCore

/// The `http-json` kind: paginated JSON APIs (API.md, "Sources").
public final class HTTPJSONSourceKind: SyncSourceKind {
    public let client: UpstreamClient
    private let limiters = Mutex<[String: (RateLimit, RateLimiter)]>([:])

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

    public func makeSource(_ context: SourceContext) throws -> any SyncSource {
        let config: HTTPJSONConfig
        switch HTTPJSONConfig.parse(context.source.config) {
        case .success(let c): config = c
        case .failure(let f):
            throw SyncError(.configInvalid, f.errors.map { "\($0.field) \($0.message)" }.joined(separator: "; "), retryable: false)
        }
        return HTTPJSONSource(
            config: config, client: client, limiter: limiter(for: context.source),
            since: context.mode == .incremental ? context.source.state["cursor"] : nil,
            savedCursor: context.source.state["cursor"])
    }

    private func limiter(for source: Source) -> RateLimiter? {
        guard let limit = source.rateLimit else { return nil }
        return limiters.withLock { map in
            if let (existing, limiter) = map[source.id], existing == limit { return limiter }
            let limiter = RateLimiter(limit)
            map[source.id] = (limit, limiter)
            return limiter
        }
    }
}

/// Reads one http-json source. The checkpoint is an object: `url` (next_url, link_header),
/// `cursor`, `page` or `offset` for where the next page starts, `since` (the incremental
/// cursor this sync filters by, fixed for the whole sync) and `max_cursor` (the largest
/// cursor value committed so far).
struct HTTPJSONSource: SyncSource {
    let config: HTTPJSONConfig
    let client: UpstreamClient
    let limiter: RateLimiter?
    let since: JSONValue?
    let savedCursor: JSONValue?

    func readPage(_ request: PageRequest) async throws -> SourcePage {
        let checkpoint = request.checkpoint?.objectValue
        let since = checkpoint == nil ? self.since : checkpoint?["since"].flatMap { $0.isNull ? nil : $0 }
        let previousMax = checkpoint == nil ? savedCursor : checkpoint?["max_cursor"].flatMap { $0.isNull ? nil : $0 }
        let url = try pageURL(checkpoint: checkpoint, since: since)
        let response = try await client.get(url, config: config, limiter: limiter)
        try Task.checkCancellation()
        let parsed = try PageParser(config: config).parse(response.body, pageNumber: request.pageNumber, status: response.status)

        var next: JSONObject? = ["since": since ?? .null]
        switch config.pagination {
        case .none:
            next = nil
        case .nextURL:
            if let value = parsed.paginationValue {
                guard let resolved = URL(string: value, relativeTo: url)?.absoluteURL, resolved.scheme?.hasPrefix("http") == true else {
                    throw SyncErrorFactory.invalidResponse("the next-page URL \"\(value.prefix(200))\" is not a URL", status: response.status)
                }
                next?["url"] = .string(resolved.absoluteString)
            } else { next = nil }
        case .linkHeader:
            if let link = LinkHeader.next(response.headers[canonicalForm: "link"].joined(separator: ", "), base: url) {
                next?["url"] = .string(link.absoluteString)
            } else { next = nil }
        case .cursor:
            if let value = parsed.paginationValue { next?["cursor"] = .string(value) } else { next = nil }
        case .page(_, _, _, let start):
            let current = checkpoint?["page"]?.intValue ?? start
            if parsed.elementCount > 0 { next?["page"] = .number(Double(current + 1)) } else { next = nil }
        case .offset:
            let current = checkpoint?["offset"]?.intValue ?? 0
            if parsed.elementCount > 0 { next?["offset"] = .number(Double(current + parsed.elementCount)) } else { next = nil }
        }
        if let nextURL = next?["url"]?.stringValue, nextURL == url.absoluteString {
            throw SyncErrorFactory.invalidResponse("the upstream's next page is the page just read (a pagination loop)", status: response.status)
        }

        var state: JSONObject?
        var runningMax = previousMax
        if let pageMax = parsed.maxCursor, runningMax == nil || CursorOrder.isGreater(pageMax, than: runningMax!) {
            runningMax = pageMax
            state = ["cursor": pageMax]
        }
        next?["max_cursor"] = runningMax ?? .null
        return SourcePage(records: parsed.records, recordErrors: parsed.recordErrors, bytesRead: response.body.count,
                          next: next.map(JSONValue.object), sourceState: state)
    }

    /// The URL of the page the checkpoint names.
    func pageURL(checkpoint: JSONObject?, since: JSONValue?) throws -> URL {
        if let saved = checkpoint?["url"]?.stringValue {
            guard let url = URL(string: saved) else { throw SyncError(.internalError, "unreadable checkpoint URL", retryable: false) }
            return url
        }
        var params = config.query
        if let incremental = config.incremental, let since, let text = JSONValue.scalarText(since) {
            params.append((incremental.param, text))
        }
        switch config.pagination {
        case .cursor(let param, _):
            if let cursor = checkpoint?["cursor"]?.stringValue { params.append((param, cursor)) }
        case .page(let param, let sizeParam, let size, let start):
            params.append((param, String(checkpoint?["page"]?.intValue ?? start)))
            if let sizeParam, let size { params.append((sizeParam, String(size))) }
        case .offset(let param, let limitParam, let limit):
            params.append((param, String(checkpoint?["offset"]?.intValue ?? 0)))
            if let limitParam, let limit { params.append((limitParam, String(limit))) }
        case .none, .nextURL, .linkHeader:
            break
        }
        return QueryString.appending(params, to: config.url)
    }
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

/// RFC 8288 `Link` header: the target of `rel="next"`.
enum LinkHeader {
    static func next(_ header: String?, base: URL) -> URL? {
        guard let header else { return nil }
        var rest = Substring(header)
        while let open = rest.firstIndex(of: "<") {
            guard let close = rest[open...].firstIndex(of: ">") else { return nil }
            let target = rest[rest.index(after: open)..<close]
            var params = rest[rest.index(after: close)...]
            // Parameters run to the next link (a comma outside quotes).
            var end = params.endIndex
            var inQuotes = false
            for i in params.indices {
                if params[i] == "\"" { inQuotes.toggle() }
                if params[i] == "," && !inQuotes { end = i; break }
            }
            let paramText = params[..<end]
            params = end < params.endIndex ? params[params.index(after: end)...] : params[params.endIndex...]
            for param in paramText.split(separator: ";") {
                let pair = param.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2, pair[0].lowercased() == "rel" else { continue }
                let rels = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased().split(separator: " ")
                if rels.contains("next") { return URL(string: String(target), relativeTo: base)?.absoluteURL }
            }
            rest = params
        }
        return nil
    }
}
