import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import SyncCore

/// The dashboard (docs/dashboard.md): pages rendered by the server from Mustache templates
/// bundled with it, a stylesheet and one script, all from this origin.
///
/// Three ways to answer a page:
/// - no tokens configured (loopback): the whole page, readable without JavaScript;
/// - tokens configured, no `Authorization`: the page's frame and a sign-in form, no data; the
///   script keeps the token in `sessionStorage` and asks again with it;
/// - with a valid bearer token, or `X-Tributary-Fragment: 1`: the page's content alone, for
///   the script to put in place (a viewer's content has no action buttons).
///
/// No cookies are read or set, so a page cannot be made to act by another site (no CSRF);
/// every page carries a `Content-Security-Policy` that allows this origin's script and
/// stylesheet only.
struct DashboardRoutes {
    let env: APIEnvironment
    let tokensConfigured: Bool

    static let pages = ["/", "/sources", "/sources/{id}", "/syncs", "/syncs/{id}", "/nodes", "/credentials"]
    static let assets: [String: (file: String, type: String)] = [
        "/assets/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
        "/assets/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    ]
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        + "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    static let fragmentHeader = HTTPField.Name("X-Tributary-Fragment")!

    /// Paths a browser asks for without a token: the pages (their frame only) and the assets.
    static func isOpen(_ path: String) -> Bool {
        if assets[path] != nil || path == "/" { return true }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        switch parts.count {
        case 1: return ["sources", "syncs", "nodes", "credentials"].contains(parts.first!)
        case 2: return ["sources", "syncs"].contains(parts.first!) && !parts.last!.isEmpty
        default: return false
        }
    }

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.get, "/", in: table) { request, context in
            try await page(request, context, title: "Overview", nav: "overview", template: "overview") { pages in
                try await pages.overview(windowName: request.uri.queryParameters["window"].map(String.init))
            }
        }
        router.add(.get, "/sources", in: table) { request, context in
            try await page(request, context, title: "Sources", nav: "sources", template: "sources") { pages in
                let q = request.uri.queryParameters
                return try await pages.sources(query: q["q"].map(String.init), health: q["health"].map(String.init),
                                               after: q["after"].map(String.init))
            }
        }
        router.add(.get, "/sources/{id}", in: table) { request, context in
            let id = try request.path("id", context)
            return try await page(request, context, title: "Source", nav: "sources", template: "source") { pages in
                try await pages.source(id: id, after: request.uri.queryParameters["after"].map(String.init))
            }
        }
        router.add(.get, "/syncs", in: table) { request, context in
            try await page(request, context, title: "Syncs", nav: "syncs", template: "syncs") { pages in
                try await pages.syncs(try await pages.syncsQuery(request))
            }
        }
        router.add(.get, "/syncs/{id}", in: table) { request, context in
            let id = try request.path("id", context)
            return try await page(request, context, title: "Sync \(id)", nav: "syncs", template: "sync") { pages in
                try await pages.sync(id: id)
            }
        }
        router.add(.get, "/nodes", in: table) { request, context in
            try await page(request, context, title: "Nodes", nav: "nodes", template: "nodes") { pages in try await pages.nodes() }
        }
        router.add(.get, "/credentials", in: table) { request, context in
            try await page(request, context, title: "Credentials", nav: "credentials", template: "credentials") { pages in
                try await pages.credentials(after: request.uri.queryParameters["after"].map(String.init))
            }
        }
        for (path, asset) in Self.assets {
            router.add(.get, path, in: table) { _, _ in
                var headers = HTTPFields()
                headers[.contentType] = asset.type
                headers[.cacheControl] = "no-cache"
                headers[.xContentTypeOptions] = "nosniff"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: DashboardTemplates.asset(asset.file))))
            }
        }
    }

    private func page(
        _ request: Request, _ context: TributaryRequestContext, title: String, nav: String, template: String,
        build: (DashboardPages) async throws -> [String: Any]
    ) async throws -> Response {
        let fragment = context.role != nil || request.headers[Self.fragmentHeader] == "1"
        if tokensConfigured && context.role == nil {
            // No token yet: the frame only. A fragment asked for without one is refused.
            if fragment { throw Problem.unauthorized }
            return html(DashboardTemplates.layout(title: title, nav: nav, main: nil, signIn: true), status: .ok)
        }
        let canAct = !tokensConfigured || context.role == .admin
        var status = HTTPResponse.Status.ok
        var main: String
        do {
            try request.checkQueryText()
            var values = try await build(DashboardPages(env: env, now: Date(), canAct: canAct))
            values["can_act"] = canAct
            main = DashboardTemplates.render(template, values)
        } catch let problem as Problem {
            status = problem.status
            main = DashboardTemplates.render("error", [
                "title": problem.title, "detail": problem.detail, "status": Int(problem.status.code),
                "errors": (problem.errors ?? []).map { ["field": $0.field, "message": $0.message] }, "has_errors": !(problem.errors ?? []).isEmpty,
            ])
        }
        if fragment { return html(main, status: status) }
        return html(DashboardTemplates.layout(title: title, nav: nav, main: main, signIn: false), status: status)
    }

    private func html(_ body: String, status: HTTPResponse.Status) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[.referrerPolicy] = "no-referrer"
        headers[.cacheControl] = "no-store"
        headers[.vary] = "Authorization, X-Tributary-Fragment"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

extension HTTPField.Name {
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}

/// The templates and assets bundled with the server (`Resources/dashboard`), parsed once.
enum DashboardTemplates {
    static let directory: URL? = Bundle.module.resourceURL?.appendingPathComponent("dashboard")

    static let library: MustacheLibrary = {
        MustacheContentTypes.register(HTMLEscape.ContentType(), named: HTMLEscape.ContentType.name)
        var library = MustacheLibrary()
        guard let directory, let files = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return library }
        for file in files where file.hasSuffix(".mustache") {
            guard let text = try? String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8) else { continue }
            do { try library.register(HTMLEscape.pragma + text, named: String(file.dropLast(".mustache".count))) }
            catch { preconditionFailure("dashboard template \(file) does not parse: \(error)") }
        }
        return library
    }()

    static func asset(_ name: String) -> [UInt8] {
        guard let directory, let data = try? Data(contentsOf: directory.appendingPathComponent(name)) else { return [] }
        return [UInt8](data)
    }

    static func render(_ template: String, _ values: [String: Any]) -> String {
        library.render(values, withTemplate: template) ?? ""
    }

    static func layout(title: String, nav: String, main: String?, signIn: Bool) -> String {
        render("layout", [
            "title": title, "main": main ?? "", "sign_in": signIn,
            "nav": [("overview", "/", "Overview"), ("sources", "/sources", "Sources"), ("syncs", "/syncs", "Syncs"), ("nodes", "/nodes", "Nodes"), ("credentials", "/credentials", "Credentials")]
                .map { ["href": $0.1, "label": $0.2, "current": $0.0 == nav] as [String: Any] },
        ])
    }
}
