import CoreMetrics
import Synchronization

/// What a node counts, through swift-metrics into the factory it was given (the node's
/// Prometheus registry, which `GET /metrics` writes out). Every name and label set is
/// fixed here, so the label sets stay bounded (docs/operations.md lists each metric).
///
/// One instance per node, not the process-wide `MetricsSystem`: two nodes in one process
/// (the tests) count apart.
public final class TributaryMetrics: Sendable {
    public let factory: any MetricsFactory
    private let counters = Mutex<[Key: CoreMetrics.Counter]>([:])
    private let timers = Mutex<[Key: CoreMetrics.Timer]>([:])
    private let gauges = Mutex<[Key: CoreMetrics.Gauge]>([:])

    private struct Key: Hashable {
        var name: String
        var labels: [String]
    }

    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// Counts nothing (commands and tests that do not look).
    public static func discarding() -> TributaryMetrics { TributaryMetrics(factory: NOOPMetricsHandler.instance) }

    // MARK: Names

    public static let syncsFinished = "tributary_syncs_finished_total"
    public static let syncDuration = "tributary_sync_duration_seconds"
    public static let records = "tributary_records_total"
    public static let pagesCommitted = "tributary_pages_committed_total"
    public static let upstreamRequests = "tributary_upstream_requests_total"
    public static let upstreamRetries = "tributary_upstream_retries_total"
    public static let leasesRescued = "tributary_leases_rescued_total"
    public static let syncsPruned = "tributary_syncs_pruned_total"
    public static let webhookDeliveries = "tributary_webhook_deliveries_total"
    public static let httpRequestDuration = "tributary_http_request_duration_seconds"
    public static let queueDepth = "tributary_queue_depth"
    public static let queueOldestAge = "tributary_queue_oldest_age_seconds"
    public static let syncsRunning = "tributary_syncs_running"
    public static let leasesExpired = "tributary_leases_expired"
    public static let nodesLive = "tributary_nodes_live"
    public static let workersLive = "tributary_workers_live"
    public static let sourcesFailing = "tributary_sources_failing"
    public static let sourcesStale = "tributary_sources_stale"
    public static let databaseUp = "tributary_database_up"

    /// Buckets of the two histograms (seconds).
    public static let syncDurationBuckets: [Duration] = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200].map { .milliseconds(Int64($0 * 1000)) }
    public static let httpDurationBuckets: [Duration] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10].map { .microseconds(Int64($0 * 1_000_000)) }

    // MARK: Recording

    /// A sync reached a terminal status (`status` completed, failed or cancelled) after
    /// `seconds` from its first start (nil: it never started).
    public func syncFinished(status: String, kind: String, seconds: Double?) {
        counter(Self.syncsFinished, ["status": status, "kind": kind]).increment()
        if let seconds, seconds.isFinite, seconds >= 0 {
            timer(Self.syncDuration, ["status": status]).recordNanoseconds(Int64(min(seconds, 1e9) * 1e9))
        }
    }

    /// What one or more committed pages added to a sync's progress.
    public func committed(_ delta: SyncProgress) {
        // Every page of every sync comes here: the six handles sit in fixed slots (one lock,
        // no key to build and hash), made on first use so /metrics lists what happened.
        let counts = [delta.pages, delta.recordsCreated, delta.recordsUpdated, delta.recordsUnchanged, delta.recordsDeleted, delta.recordsFailed]
        guard counts.contains(where: { $0 > 0 }) else { return }
        let handles = pageCounters.withLock { slots -> [CoreMetrics.Counter?] in
            for (i, n) in counts.enumerated() where n > 0 && slots[i] == nil {
                slots[i] = i == 0 ? CoreMetrics.Counter(label: Self.pagesCommitted, dimensions: [], factory: factory)
                    : CoreMetrics.Counter(label: Self.records, dimensions: [("operation", Self.operations[i - 1])], factory: factory)
            }
            return slots
        }
        for (i, n) in counts.enumerated() where n > 0 { handles[i]?.increment(by: n) }
    }

    /// The `operation` label values of ``records``, in ``committed(_:)``'s slot order.
    static let operations = ["created", "updated", "unchanged", "deleted", "failed"]
    private let pageCounters = Mutex<[CoreMetrics.Counter?]>(Array(repeating: nil, count: 6))

    /// One upstream response (`2xx` … `5xx`) or `error` (no response: refused, reset, timed out).
    public func upstreamRequest(codeClass: String) {
        counter(Self.upstreamRequests, ["code_class": codeClass]).increment()
    }

    public func upstreamRetry() { counter(Self.upstreamRetries, [:]).increment() }

    public func leasesRescued(_ count: Int) { if count > 0 { counter(Self.leasesRescued, [:]).increment(by: count) } }

    public func syncsPruned(_ count: Int) { if count > 0 { counter(Self.syncsPruned, [:]).increment(by: count) } }

    /// One try of a webhook delivery: `delivered`, `retrying` or `failed` (given up).
    public func webhookDelivery(result: String) { counter(Self.webhookDeliveries, ["result": result]).increment() }

    /// One API request, by route template (never the raw path).
    public func httpRequest(method: String, route: String, status: Int, nanoseconds: Int64) {
        timer(Self.httpRequestDuration, ["method": method, "route": route, "status": String(status)]).recordNanoseconds(nanoseconds)
    }

    /// A gauge read from the database at scrape time (the same on every node of a cluster).
    public func set(_ name: String, _ value: Double) {
        gauge(name, [:]).record(value)
    }

    // MARK: Handles

    /// The handle of `name` with `labels`, made through the factory once and then reused: a
    /// factory lookup (the Prometheus registry takes a lock and builds label arrays) on every
    /// page cost the queue benchmark about 5 % of its throughput.
    private func handle<Handle: Sendable>(
        _ cache: borrowing Mutex<[Key: Handle]>, _ name: String, _ labels: KeyValuePairs<String, String>,
        make: (String, [(String, String)]) -> Handle
    ) -> Handle {
        let key = Key(name: name, labels: labels.flatMap { [$0.key, $0.value] })
        if let h = cache.withLock({ $0[key] }) { return h }
        let made = make(name, labels.map { ($0.key, $0.value) })
        return cache.withLock { cached in
            if let h = cached[key] { return h }
            cached[key] = made
            return made
        }
    }

    private func counter(_ name: String, _ labels: KeyValuePairs<String, String>) -> CoreMetrics.Counter {
        handle(counters, name, labels) { CoreMetrics.Counter(label: $0, dimensions: $1, factory: factory) }
    }

    private func timer(_ name: String, _ labels: KeyValuePairs<String, String>) -> CoreMetrics.Timer {
        handle(timers, name, labels) { CoreMetrics.Timer(label: $0, dimensions: $1, factory: factory) }
    }

    private func gauge(_ name: String, _ labels: KeyValuePairs<String, String>) -> CoreMetrics.Gauge {
        handle(gauges, name, labels) { CoreMetrics.Gauge(label: $0, dimensions: $1, factory: factory) }
    }
}

extension SyncProgress {
    /// What `self` added to `earlier` (counters only).
    public func minus(_ earlier: SyncProgress) -> SyncProgress {
        var d = SyncProgress()
        d.pages = max(0, pages - earlier.pages)
        d.recordsRead = max(0, recordsRead - earlier.recordsRead)
        d.recordsCreated = max(0, recordsCreated - earlier.recordsCreated)
        d.recordsUpdated = max(0, recordsUpdated - earlier.recordsUpdated)
        d.recordsUnchanged = max(0, recordsUnchanged - earlier.recordsUnchanged)
        d.recordsDeleted = max(0, recordsDeleted - earlier.recordsDeleted)
        d.recordsFailed = max(0, recordsFailed - earlier.recordsFailed)
        d.bytesRead = max(0, bytesRead - earlier.bytesRead)
        return d
    }
}
