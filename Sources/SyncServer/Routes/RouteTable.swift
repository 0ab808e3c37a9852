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

    /// The methods served on `path` (HEAD wherever GET is): those of the one pattern the
    /// router resolves it to. The router prefers a literal segment to a parameter, segment by
    /// segment, and does not fall back to another pattern for another method: `/v1/syncs/cancel`
    /// serves POST only, although `/v1/syncs/{id}` serves GET.
    func methods(matching path: String) -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        let candidates = Set(routes.map(\.path)).compactMap { pattern -> [Substring]? in
            let segments = pattern.split(separator: "/", omittingEmptySubsequences: true)
            guard segments.count == parts.count, zip(segments, parts).allSatisfy({ p, s in p.hasPrefix("{") || p == s }) else { return nil }
            return segments
        }
        // Most specific first: at the first segment where two patterns differ, a literal wins.
        let best = candidates.min { a, b in
            for (x, y) in zip(a, b) where x != y { return !x.hasPrefix("{") && y.hasPrefix("{") }
            return false
        }
        guard let best else { return [] }
        let pattern = "/" + best.joined(separator: "/")
        var methods = Set(routes.filter { $0.path == pattern }.map(\.method))
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
