import Hummingbird

/// What a token may do: `admin` everything, `viewer` only reads.
public enum TokenRole: String, Sendable, CaseIterable {
    case admin
    case viewer
}

/// Bearer-token authentication. Without configured tokens every request is allowed
/// (the server then refuses to bind anything but loopback). `/healthz`, `/readyz`
/// and `/metrics` never need a token; the dashboard's pages come without data when asked
/// for without one (``DashboardRoutes``).
struct AuthMiddleware: RouterMiddleware {
    typealias Context = TributaryRequestContext
    let tokens: [String: TokenRole]
    /// Whether any configured token is a `sha256:` digest, decided once: without one a
    /// request's token is never hashed.
    private let hasDigests: Bool

    init(tokens: [String: TokenRole]) {
        self.tokens = tokens
        hasDigests = tokens.keys.contains { TokenDigest.normalized($0) != nil }
    }

    static let openPaths: Set<String> = ["/healthz", "/readyz", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !tokens.isEmpty, !Self.openPaths.contains(request.uri.path) else { return try await next(request, context) }
        // Dashboard pages and assets load without a token (a page's frame and sign-in form,
        // no data); one that comes with a token must be valid.
        if request.headers[.authorization] == nil && (request.method == .get || request.method == .head) && DashboardRoutes.isOpen(request.uri.path) {
            return try await next(request, context)
        }
        guard let header = request.headers[.authorization], header.count > 7,
              header.prefix(7).lowercased() == "bearer ",
              let role = role(for: String(header.dropFirst(7))) else {
            throw Problem.unauthorized
        }
        if role == .viewer && request.method != .get && request.method != .head {
            throw Problem.forbidden("The viewer role may only read (GET).")
        }
        var context = context
        context.role = role
        return try await next(request, context)
    }

    /// Looks the token up comparing every configured token in constant time: a configured
    /// `sha256:` digest against the presented token's digest, any other against the token.
    private func role(for presented: String) -> TokenRole? {
        var found: TokenRole?
        let plain = Array(presented.utf8)
        let digest = hasDigests ? Array(TokenDigest.of(presented).utf8) : []
        for (token, role) in tokens {
            let t = Array(token.utf8)
            // Configured digests are stored normalized (lowercase), so the prefix tells them.
            let p = token.hasPrefix(TokenDigest.prefix) ? digest : plain
            var diff = UInt8(t.count == p.count ? 0 : 1)
            for i in 0..<t.count { diff |= t[i] ^ (i < p.count ? p[i] : 0) }
            if diff == 0 { found = role }
        }
        return found
    }
}
