import Foundation
import Hummingbird
import Prometheus
import SyncCore
import SyncStore

extension TributaryMetrics {
    /// Metrics recorded into a Prometheus registry, with Tributary's histogram buckets.
    public convenience init(prometheus registry: PrometheusCollectorRegistry) {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            Self.syncDuration: Self.syncDurationBuckets,
            Self.httpRequestDuration: Self.httpDurationBuckets,
        ]
        self.init(factory: factory)
    }
}

/// `GET /metrics`: the node's counters and histograms, and the cluster's gauges read from
/// the database at scrape time, so every node of a cluster reports the same queue.
struct MetricsRoutes {
    let env: APIEnvironment

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.get, "/metrics", in: table) { _, _ in
            await refreshGauges(now: Date())
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16_384)
            env.prometheus.emit(into: &buffer)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
    }

    /// The queue, leases, nodes and source health from one health snapshot; if the database
    /// does not answer, `tributary_database_up` says 0 and the other gauges keep their last value.
    private func refreshGauges(now: Date) async {
        let m = env.metrics
        guard let snapshot = try? await Timeouts.databaseCheck({ try await env.store.healthSnapshot(now: now) }) else {
            m.set(TributaryMetrics.databaseUp, 0)
            return
        }
        m.set(TributaryMetrics.databaseUp, 1)
        m.set(TributaryMetrics.queueDepth, Double(snapshot.queued))
        m.set(TributaryMetrics.queueOldestAge, snapshot.oldestQueuedAt.map { max(0, now.timeIntervalSince($0)) } ?? 0)
        m.set(TributaryMetrics.syncsRunning, Double(snapshot.running))
        m.set(TributaryMetrics.leasesExpired, Double(snapshot.expiredLeases))
        let live = snapshot.nodes.filter { now.timeIntervalSince($0.heartbeatAt) <= NodeInfo.staleAfterSeconds }
        m.set(TributaryMetrics.nodesLive, Double(live.count))
        m.set(TributaryMetrics.workersLive, Double(live.reduce(0) { $0.addingSaturated($1.workers) }))
        m.set(TributaryMetrics.sourcesFailing, Double(snapshot.failingSources.count))
        m.set(TributaryMetrics.sourcesStale, Double(snapshot.staleSources.count))
    }
}
