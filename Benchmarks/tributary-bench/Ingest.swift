import ArgumentParser
import Foundation
import Logging
import SyncConnectors
import SyncCore
import SyncEngine
import SyncStore
#if canImport(Glibc)
import Glibc
#endif

/// Pulls a paginated JSON API (next_url pagination) into a fresh SQLite record store (or a
/// new source on a PostgreSQL database) through the real engine, and reports the wall time,
/// records per second and peak RSS.
struct Ingest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time one full http-json sync into a fresh SQLite store or a PostgreSQL database.")

    @Option(help: "URL of the first page; pages are {\"rows\": [...], \"next_url\": ...}.") var url: String
    @Option(help: "Runs; the table shows each and the median.") var runs = 3
    @Flag(help: "Generate the same number of records with the synthetic kind instead (no HTTP, no parsing): the store's share.")
    var synthetic = false
    @Option(help: "postgres://… to ingest into PostgreSQL (a new source per run) instead of a fresh SQLite file.")
    var database: String?

    func run() async throws {
        var times: [Double] = []
        var records = 0
        for run in 1...runs {
            let dir = NSTemporaryDirectory() + "tributary-ingest-\(UUID().uuidString.prefix(6))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let store = try database.map { try DatabaseStore.postgres(url: $0) } ?? DatabaseStore.sqlite(path: dir + "/ingest.sqlite")
            store.start()
            try await store.migrate()
            let upstream = UpstreamClient()
            let kinds = SourceKindRegistry.standard(client: upstream)
            let pool = WorkerPool(store: store, kinds: kinds, configuration: EngineConfiguration(workers: 1, nodeID: "bench"),
                                  logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
            let now = Date()
            let source = try await store.createSource(Source(
                id: Identifier.make("src"), name: "bench-\(UUID().uuidString.prefix(8))", kind: synthetic ? "synthetic" : "http-json",
                config: synthetic ? ["records": .number(200_000), "page_size": .number(1000)] :
                    ["url": .string(url), "records_path": .string("/rows"), "primary_key": .string("id"),
                     "pagination": .object(["type": .string("next_url"), "path": .string("/next_url")])],
                createdAt: now, updatedAt: now))
            let sync: Sync = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await pool.run() }
                let start = ContinuousClock.now
                let queued = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .cli)).sync
                pool.wakeUp.signal()
                var current = queued
                while !current.status.isTerminal {
                    try await Task.sleep(for: .milliseconds(5))
                    current = try await store.sync(id: queued.id) ?? current
                }
                let elapsed = ContinuousClock.now - start
                times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                pool.beginShutdown()
                group.cancelAll()
                return current
            }
            try await upstream.shutdown()
            await store.close()
            guard sync.status == .completed else {
                throw ValidationError("the sync did not complete: \(String(describing: sync.error))")
            }
            records = sync.progress.recordsCreated
            FileHandle.standardError.write(Data("run \(run): \(String(format: "%.3f", times.last!)) s, \(records) records\n".utf8))
        }
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let median = times.sorted()[times.count / 2]
        print("| tributary (release), 1 worker\(synthetic ? ", synthetic kind" : "")\(database == nil ? "" : ", PostgreSQL") | \(records) | " + times.map { String(format: "%.2f s", $0) }.joined(separator: ", ")
              + " | \(String(format: "%.2f s", median)) | \(Int(Double(records) / median)) records/s | \(usage.ru_maxrss / 1024) MB |")
    }
}

/// Times `commitPage` alone: the store's share of a sync, without the engine or a source.
struct Commit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time the SQLite store's commitPage for 200 pages of 1,000 records.")
    @Option var pages = 200
    @Option(help: "Read the pages from this http-json URL instead of the synthetic kind.") var url: String?
    func run() async throws {
        let dir = NSTemporaryDirectory() + "tributary-commit-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try DatabaseStore.sqlite(path: dir + "/c.sqlite").start()
        try await store.migrate()
        let now = Date()
        let source = try await store.createSource(Source(id: Identifier.make("src"), name: "c", kind: "synthetic", config: [:], createdAt: now, updatedAt: now))
        _ = try await store.enqueue(EnqueueRequest(sourceID: source.id, mode: .full, priority: 0, trigger: .cli))
        let claimed = try await store.claimNext(owner: "b", leaseSeconds: 30, now: Date())!
        let upstream = UpstreamClient()
        let reader: any SyncSource
        if let url {
            let config: JSONObject = ["url": .string(url), "records_path": .string("/rows"), "primary_key": .string("id"),
                                      "pagination": .object(["type": .string("next_url"), "path": .string("/next_url")])]
            reader = try HTTPJSONSourceKind(client: upstream).makeSource(SourceContext(
                source: Source(id: "x", name: "x", kind: "http-json", config: config, createdAt: now, updatedAt: now), mode: .full, syncID: "s"))
        } else {
            reader = SyntheticSource(config: SyntheticSourceKind.parse(["records": .number(Double(pages * 1000)), "page_size": .number(1000)]))
        }
        var checkpoint: JSONValue?
        var readTime = Duration.zero
        var commitTime = Duration.zero
        for p in 1...pages {
            let t0 = ContinuousClock.now
            let page = try await reader.readPage(PageRequest(checkpoint: checkpoint, pageInAttempt: p, pageNumber: p))
            let t1 = ContinuousClock.now
            _ = try await store.commitPage(PageCommit(pageNumber: p, records: page.records, bytesRead: page.bytesRead, checkpoint: page.next ?? .null), lease: claimed.lease, now: Date())
            commitTime += ContinuousClock.now - t1
            readTime += t1 - t0
            checkpoint = page.next
        }
        try await upstream.shutdown()
        print("read \(readTime), commit \(commitTime)")
    }
}
