import Foundation
import Logging
import Synchronization
import SyncCore
import SyncStore

/// The node's one reader for live views: while anybody holds an event stream open, it
/// reads the watched syncs (and, for `GET /v1/events`, what is moving) every `interval`
/// and hands each stream what it needs. The database sees the same two or three queries
/// per interval whether one client or a thousand watch, and none when nobody does. It
/// reads the database, not this node's memory, so a sync running on another node (or
/// another process on one SQLite file) is seen the same.
public final class SyncEventHub: Sendable {
    /// What a stream receives.
    public enum Update: Sendable {
        /// The watched sync as stored now (every poll; the stream sends what changed).
        case sync(Sync)
        /// Syncs of a view of everything that changed since the last poll, as of `at`.
        case changes([Sync], at: Date)
        /// Nothing happened for a while: a comment keeps proxies from closing the stream.
        case keepAlive
        /// The node is shutting down.
        case end
    }

    /// A stream's place in the hub; cancel it when the stream ends.
    public final class Subscription: Sendable {
        public let updates: AsyncStream<Update>
        let cancelAction: @Sendable () -> Void
        init(updates: AsyncStream<Update>, cancel: @escaping @Sendable () -> Void) {
            self.updates = updates
            self.cancelAction = cancel
        }
        public func cancel() { cancelAction() }
    }

    private struct Subscriber {
        var syncID: String?
        var sourceID: String?
        var continuation: AsyncStream<Update>.Continuation
    }

    private struct State {
        var nextID = 0
        var subscribers: [Int: Subscriber] = [:]
        var polling = false
        var closed = false
    }

    let store: any SyncWatching
    let interval: Duration
    let keepAlive: Duration
    let maxStreams: Int
    let logger: Logger
    private let state = Mutex(State())

    public init(store: any SyncWatching, interval: Duration = .milliseconds(250), keepAlive: Duration = .seconds(15),
                maxStreams: Int = 1000, logger: Logger = Logger(label: "tributary.events")) {
        self.store = store
        self.interval = interval
        self.keepAlive = keepAlive
        self.maxStreams = maxStreams
        self.logger = logger
    }

    /// How many streams are open.
    public var openStreams: Int { state.withLock { $0.subscribers.count } }

    /// A stream of one sync (`syncID`) or of everything (of one source, if `sourceID`);
    /// `nil` when `maxStreams` are open or the node is shutting down.
    public func subscribe(syncID: String? = nil, sourceID: String? = nil) -> Subscription? {
        let (stream, continuation) = AsyncStream<Update>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let started: (id: Int, startPolling: Bool)? = state.withLock { s in
            guard !s.closed, s.subscribers.count < maxStreams else { return nil }
            let id = s.nextID
            s.nextID += 1
            s.subscribers[id] = Subscriber(syncID: syncID, sourceID: sourceID, continuation: continuation)
            defer { s.polling = true }
            return (id, !s.polling)
        }
        guard let started else { return nil }
        if started.startPolling { Task { await self.poll() } }
        return Subscription(updates: stream) { [weak self] in
            let removed = self?.state.withLock { $0.subscribers.removeValue(forKey: started.id) }
            removed?.continuation.finish()
        }
    }

    /// Ends every stream and refuses new ones (graceful shutdown: open streams must not hold
    /// the server up).
    public func shutdown() {
        let subscribers = state.withLock { s -> [Subscriber] in
            s.closed = true
            defer { s.subscribers = [:] }
            return Array(s.subscribers.values)
        }
        for subscriber in subscribers {
            subscriber.continuation.yield(.end)
            subscriber.continuation.finish()
        }
    }

    private func poll() async {
        var lastKeepAlive = ContinuousClock.now
        var since = Date()
        var seen: [String: SyncFingerprint] = [:]
        var running: Set<String> = []
        var everythingWatched = false
        while true {
            let subscribers = state.withLock { s -> [Subscriber]? in
                if s.subscribers.isEmpty || s.closed {
                    s.polling = false
                    return nil
                }
                return Array(s.subscribers.values)
            }
            guard let subscribers else { return }
            do {
                let ids = Array(Set(subscribers.compactMap(\.syncID)))
                if !ids.isEmpty {
                    let byID = Dictionary(try await store.syncs(ids: ids).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
                    for subscriber in subscribers {
                        if let id = subscriber.syncID, let sync = byID[id] { subscriber.continuation.yield(.sync(sync)) }
                    }
                }
                let watchers = subscribers.filter { $0.syncID == nil }
                if !watchers.isEmpty {
                    let at = Date()
                    if !everythingWatched {
                        // The first look only learns the present; each stream sent its own snapshot.
                        since = at
                    }
                    // A little overlap: a sync written by another node just before `since`
                    // commits a moment later.
                    var syncs = try await store.syncActivity(since: since.addingTimeInterval(-2), sourceID: nil, limit: 1000)
                    let nowRunning = Set(syncs.filter { $0.status == .running }.map(\.id))
                    let left = running.subtracting(nowRunning).subtracting(syncs.map(\.id))
                    if !left.isEmpty { syncs += try await store.syncs(ids: Array(left)) }
                    running = nowRunning
                    var changed: [Sync] = []
                    for sync in syncs {
                        let fingerprint = SyncFingerprint(sync)
                        if seen[sync.id] != fingerprint {
                            if everythingWatched { changed.append(sync) }
                            seen[sync.id] = fingerprint
                        }
                    }
                    everythingWatched = true
                    since = at
                    // Forget syncs that ended a while ago (they will not change without a retry,
                    // which shows when the sync runs again).
                    if seen.count > 10_000 { seen = seen.filter { running.contains($0.key) || !$0.value.status.isTerminal } }
                    if !changed.isEmpty {
                        for watcher in watchers {
                            let mine = watcher.sourceID.map { source in changed.filter { $0.sourceID == source } } ?? changed
                            if !mine.isEmpty { watcher.continuation.yield(.changes(mine, at: at)) }
                        }
                    }
                } else {
                    everythingWatched = false
                }
            } catch {
                if !(error is CancellationError) { logger.warning("reading syncs for event streams failed: \(error)") }
            }
            if ContinuousClock.now - lastKeepAlive >= keepAlive {
                lastKeepAlive = .now
                for subscriber in subscribers { subscriber.continuation.yield(.keepAlive) }
            }
            try? await Task.sleep(for: interval)
        }
    }
}

/// What a live view shows of a sync: a change in any of these is an event.
struct SyncFingerprint: Equatable {
    var status: SyncStatus
    var attempt: Int
    var pages: Int
    var recordsRead: Int
    var cancelRequested: Bool

    init(_ sync: Sync) {
        status = sync.status
        attempt = sync.attempt
        pages = sync.progress.pages
        recordsRead = sync.progress.recordsRead
        cancelRequested = sync.cancelRequested
    }
}
