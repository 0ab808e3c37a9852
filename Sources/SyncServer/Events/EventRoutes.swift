import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle
import SyncCore
import SyncStore

/// Server-sent events (text/event-stream): one sync until it ends, or everything moving.
struct EventRoutes {
    let env: APIEnvironment
    let hub: SyncEventHub

    func register(on router: Router<TributaryRequestContext>, table: RouteTable) {
        router.add(.get, "/v1/syncs/{id}/events", in: table) { request, context in
            let id = try request.path("id", context)
            guard let first = try await env.store.sync(id: id) else { throw Problem.notFound("No sync \(id).") }
            // A HEAD is answered with the stream's headers and opens no stream (and takes no slot).
            if request.method == .head { return Response(status: .ok, headers: Self.headers) }
            let lastEventID = request.headers[.lastEventID]
            guard let subscription = hub.subscribe(syncID: id) else { throw Self.tooMany }
            let unwatch = await watchPeer(context, subscription)
            return Response(status: .ok, headers: Self.headers, body: ResponseBody { writer in
                defer { subscription.cancel(); unwatch() }
                var shown = first
                if lastEventID != Self.eventID(first) {
                    try await writer.write(SSE.event("progress", id: Self.eventID(first), APIRepresentation.progress(first.progress)))
                    try await writer.write(SSE.event("status", id: Self.eventID(first), APIRepresentation.sync(first)))
                }
                // Graceful shutdown ends the stream: the server waits for every response before
                // it stops, so a stream left open would hold the node up.
                if !first.status.isTerminal {
                    try await withGracefulShutdownHandler {
                    loop: for await update in subscription.updates {
                        switch update {
                        case .sync(let now):
                            let before = SyncFingerprint(shown), after = SyncFingerprint(now)
                            guard before != after else { continue }
                            if before.pages != after.pages || before.recordsRead != after.recordsRead {
                                try await writer.write(SSE.event("progress", id: Self.eventID(now), APIRepresentation.progress(now.progress)))
                            }
                            if before.status != after.status || before.attempt != after.attempt || before.cancelRequested != after.cancelRequested {
                                // A status event carries the whole sync, its attempts included.
                                let full = try await env.store.sync(id: id) ?? now
                                try await writer.write(SSE.event("status", id: Self.eventID(now), APIRepresentation.sync(full)))
                            }
                            shown = now
                            if now.status.isTerminal { break loop }
                        case .keepAlive:
                            try await writer.write(SSE.comment)
                        case .changes:
                            continue
                        case .end:
                            break loop
                        }
                    }
                    } onGracefulShutdown: { subscription.cancel() }
                }
                try await writer.finish(nil)
            })
        }
        router.add(.get, "/v1/events", in: table) { request, context in
            var sourceID: String?
            if let raw = request.uri.queryParameters["source_id"] { sourceID = try await env.source(String(raw)).id }
            // Resuming: the syncs created or finished since the last event seen, and what runs.
            let resumeFrom = Self.resumeTime(request.headers[.lastEventID])
            if request.method == .head { return Response(status: .ok, headers: Self.headers) }
            guard let subscription = hub.subscribe(sourceID: sourceID) else { throw Self.tooMany }
            let unwatch = await watchPeer(context, subscription)
            let start = Date()
            let snapshot: [Sync]
            do {
                snapshot = try await env.store.syncActivity(since: resumeFrom ?? start, sourceID: sourceID, limit: 1000)
                    .filter { resumeFrom != nil || $0.status == .running }
            } catch {
                subscription.cancel()
                unwatch()
                throw error
            }
            return Response(status: .ok, headers: Self.headers, body: ResponseBody { writer in
                defer { subscription.cancel(); unwatch() }
                let startID = String(Int64(start.timeIntervalSince1970 * 1000))
                for sync in snapshot.reversed() {
                    try await writer.write(SSE.event("status", id: startID, APIRepresentation.sync(sync)))
                }
                if snapshot.isEmpty { try await writer.write(SSE.comment) }
                try await withGracefulShutdownHandler {
                loop: for await update in subscription.updates {
                    switch update {
                    case .changes(let syncs, let at):
                        let id = String(Int64(at.timeIntervalSince1970 * 1000))
                        for sync in syncs {
                            if sync.status == .running {
                                try await writer.write(SSE.event("progress", id: id, .object([
                                    "sync_id": .string(sync.id), "source_id": .string(sync.sourceID),
                                    "progress": APIRepresentation.progress(sync.progress),
                                ])))
                            }
                            try await writer.write(SSE.event("status", id: id, APIRepresentation.sync(sync)))
                        }
                    case .keepAlive:
                        try await writer.write(SSE.comment)
                    case .sync:
                        continue
                    case .end:
                        break loop
                    }
                }
                } onGracefulShutdown: { subscription.cancel() }
                try await writer.finish(nil)
            })
        }
    }

    /// Ends the subscription as soon as the client hangs up; returns what takes the watch off.
    private func watchPeer(_ context: TributaryRequestContext, _ subscription: SyncEventHub.Subscription) async -> @Sendable () -> Void {
        guard let channel = context.channel else { return {} }
        return await PeerClosedWatch.install(on: channel) { subscription.cancel() }
    }

    static let tooMany = Problem.unavailable("Too many event streams are open on this node; try again later.")

    static var headers: HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return headers
    }

    /// `GET /v1/events`' `Last-Event-ID`: milliseconds since 1970 as decimal digits. Anything
    /// else (`inf`, `1e20`, a sign, a fraction, text) is ignored as if absent; more digits than
    /// any id this server sends is the far future (nothing to replay). Never a conversion that traps.
    static func resumeTime(_ header: String?) -> Date? {
        guard let header, !header.isEmpty, header.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        // Fifteen digits (the year 33658) convert exactly; longer is later than any id.
        guard header.utf8.count <= 15, let ms = Double(header) else { return Date.distantFuture }
        return Date(timeIntervalSince1970: ms / 1000)
    }

    /// A sync's state as an event id: attempt, pages committed, status.
    static func eventID(_ sync: Sync) -> String { "\(sync.attempt).\(sync.progress.pages).\(sync.status.rawValue)" }
}

/// The text/event-stream framing (HTML Living Standard, "Server-sent events").
enum SSE {
    static func event(_ name: String, id: String, _ data: JSONValue) -> ByteBuffer {
        var bytes: [UInt8] = []
        bytes.append(contentsOf: "id: \(id)\nevent: \(name)\ndata: ".utf8)
        JSONWriter.write(data, into: &bytes)
        bytes.append(contentsOf: "\n\n".utf8)
        return ByteBuffer(bytes: bytes)
    }

    static let comment = ByteBuffer(string: ": keep-alive\n\n")
}

extension HTTPField.Name {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}
