import HTTPTypes
import Hummingbird

/// What a browser on another site may not make the server do (docs/api.md, "Requests from
/// browsers"). A server without tokens trusts whoever reaches its loopback port, and a web
/// page in a browser on the same machine reaches it too:
/// - **Host**: a request must name a host the server answers to (loopback names, the bound
///   address, `--allow-host`), so a DNS-rebinding page, whose requests carry its own name,
///   can neither read nor write. Not checked when the server binds every address (`0.0.0.0`,
///   `::`: tokens are then required) and no `--allow-host` is given.
/// - **Writes** (`POST`, `PATCH`, `PUT`, `DELETE`) are refused when `Sec-Fetch-Site` says
///   `cross-site` or `same-site`, or `Origin` names another origin than the request's host
///   (`Origin: null` included). Non-browser clients send neither header.
/// - A write's body must be JSON (`application/json` or `…+json`): a form or `text/plain`
///   body, which a page may send without asking, is `415`; a JSON content type is what a
///   page must ask the server's permission for (a preflight), which it never gives.
struct CrossSiteGuard: RouterMiddleware {
    typealias Context = TributaryRequestContext
    /// Host names (lowercased, without port or brackets) requests may name; `nil`: any.
    let hosts: Set<String>?

    init(boundHost: String, allowedHosts: [String]) {
        let bound = Self.name(boundHost)
        if allowedHosts.isEmpty && (bound == "0.0.0.0" || bound == "::" || bound.isEmpty) {
            hosts = nil
        } else {
            hosts = Set(["localhost", "127.0.0.1", "::1", bound] + allowedHosts.map(Self.name))
        }
    }

    static let writes: Set<HTTPRequest.Method> = [.post, .patch, .put, .delete]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let authority = request.head.authority
        if let hosts, let authority, !Self.isLoopbackLiteral(Self.name(authority)), !hosts.contains(Self.name(authority)) {
            throw Problem.forbidden("This server does not answer to the host \"\(String(Self.name(authority).prefix(100)))\"; start it with --allow-host to add one.")
        }
        guard Self.writes.contains(request.method) else { return try await next(request, context) }
        if let site = request.headers[.secFetchSite]?.lowercased(), site != "same-origin" && site != "none" {
            throw Problem.forbidden("A write from another site (Sec-Fetch-Site: \(site.prefix(20))) is refused.")
        }
        if let origin = request.headers[.origin] {
            guard let authority, Self.origin(origin, isHost: authority) else {
                throw Problem.forbidden("A write from another origin (Origin: \(origin.prefix(100))) is refused.")
            }
        }
        if let type = request.headers[.contentType] {
            guard Self.isJSON(type) else {
                throw Problem(.unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported media type",
                              detail: "A request body must be JSON (Content-Type: application/json), not \(type.prefix(100)).")
            }
        } else if let length = request.headers[.contentLength], length != "0" {
            // A browser sends a body without a type (a Blob's) with its length.
            throw Problem(.unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported media type",
                          detail: "A request body must be JSON and say so (Content-Type: application/json).")
        }
        return try await next(request, context)
    }

    /// `application/json`, `application/problem+json`, `…; charset=utf-8`: a JSON media type
    /// in UTF-8 (RFC 8259 §8.1): a body declared in another charset (`utf-16`, `latin1`) would
    /// be read as something it is not, and `application/+json` names no type.
    static func isJSON(_ contentType: String) -> Bool {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        let media = parts.first ?? ""
        guard media == "application/json" || (media.hasPrefix("application/") && media.hasSuffix("+json") && media.count > "application/+json".count)
        else { return false }
        for parameter in parts.dropFirst() where parameter.hasPrefix("charset=") {
            let charset = String(parameter.dropFirst("charset=".count)).filter { $0 != "\"" }
            guard charset == "utf-8" || charset == "utf8" else { return false }
        }
        return true
    }

    /// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to.
    static func origin(_ origin: String, isHost authority: String) -> Bool {
        guard let schemeEnd = origin.range(of: "://") else { return false }
        let scheme = origin[..<schemeEnd.lowerBound].lowercased()
        let named = String(origin[schemeEnd.upperBound...])
        return name(named) == name(authority) && port(named, scheme: scheme) == port(authority, scheme: "http")
    }

    /// The host of an authority, lowercased, without port, brackets or a final dot.
    static func name(_ authority: String) -> String {
        var text = Substring(authority.lowercased())
        if text.hasPrefix("[") {
            text = text.dropFirst().prefix { $0 != "]" }
        } else if text.filter({ $0 == ":" }).count == 1, let colon = text.lastIndex(of: ":") {
            text = text[..<colon]
        }
        while text.hasSuffix(".") { text = text.dropLast() }
        return String(text)
    }

    static func port(_ authority: String, scheme: String) -> Int? {
        let text = authority.hasPrefix("[") ? String(authority.drop { $0 != "]" }.dropFirst()) : authority
        if let colon = text.lastIndex(of: ":"), !text.hasPrefix("[") { return Int(text[text.index(after: colon)...]) }
        return scheme.lowercased() == "https" ? 443 : 80
    }

    /// 127.0.0.0/8 written as a dotted quad: every one of them is the machine itself.
    static func isLoopbackLiteral(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}

extension HTTPField.Name {
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
}
