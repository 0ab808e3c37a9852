import Foundation
import Hummingbird
import SyncCore
import SyncStore

/// Statistics of the syncs and the pruning of their history.
struct HistoryRoutes {
    let env: APIEnvironment

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.get, "/v1/stats", in: table) { request, _ in
            let window = try StatsWindow.parse(request)
            let now = Date()
            let stats = try await env.store.statistics(window: window.seconds, now: now)
            return JSONResponse.make(APIRepresentation.statistics(stats, window: window.rawValue, now: now))
        }
        router.add(.post, "/v1/maintenance/prune", in: table) { request, _ in
            let policy = try PruneInput.parse(try await request.bodyBytes(limit: env.maxBodyBytes), defaults: env.retention)
            let deleted = try await env.store.prune(policy, now: Date())
            return JSONResponse.make(.object(["deleted_syncs": .number(Double(deleted))]))
        }
    }
}
