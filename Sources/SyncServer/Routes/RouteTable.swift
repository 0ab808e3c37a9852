import Hummingbird
import Synchronization

/// Every route the server serves, in OpenAPI path syntax (`/v1/sources/{id}`).
///
/// Routes are registered through this table, so it is exactly what is served:
/// the OpenAPI conformance test compares it with `openapi.yaml`, and the
/// problem middleware uses it to tell 405 from 404.
public final class RouteTable: Sendable {
    public struct Route: Sendable, Hashable {
        public var method: String
        public var path: String
    }

    private let storage = Mutex<[Route]>([])

    public var routes: [Route] { storage.withLock { $0 } }

    func record(_ method: HTTPRequest.Method, _ path: String) {
        storage.withLock { $0.append(Route(method: method.rawValue, path: path)) }
    }

    /// Hummingbird's syntax for an OpenAPI path: `{id}` → `:id`.
    static func routerPath(_ openAPIPath: String) -> RouterPath {
        let converted = openAPIPath.split(separator: "/", omittingEmptySubsequences: false).map { segment -> String in
            if segment.hasPrefix("{") && segment.hasSuffix("}") { return ":" + segment.dropFirst().dropLast() }
            return String(segment)
        }.joined(separator: "/")
        return RouterPath(converted)
    }

    /// The methods served on paths that match `path` (HEAD wherever GET is).
    func methods(matching path: String) -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        var methods = Set(routes.filter { route in
            let pattern = route.path.split(separator: "/", omittingEmptySubsequences: true)
            guard pattern.count == parts.count else { return false }
            return zip(pattern, parts).allSatisfy { p, s in p.hasPrefix("{") || p == s }
        }.map(\.method))
        if methods.contains("GET") { methods.insert("HEAD") }
        return methods.sorted()
    }
}

extension Router where Context == TributaryRequestContext {
    /// Registers a route and records it in the table.
    func add(
        _ method: HTTPRequest.Method, _ path: String, in table: RouteTable,
        handler: @escaping @Sendable (Request, Context) async throws -> Response
    ) {
        table.record(method, path)
        on(RouteTable.routerPath(path), method: method, use: handler)
    }
}
