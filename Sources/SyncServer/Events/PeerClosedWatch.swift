import Hummingbird
import NIOCore

/// Tells a long response (an event stream) that its client went away.
///
/// Hummingbird reads a connection's next request only after the current response ends, so
/// a client that hangs up on an event stream is noticed only when a write fails, two
/// keep-alive intervals later at best; meanwhile the stream holds its descriptor and its
/// place in the hub. This handler, put at the front of the connection's pipeline for the
/// length of the stream, sees the end of the client's input (or the connection's end) at
/// once.
enum PeerClosedWatch {
    /// Calls `onClose` once, when the client closes its side or the connection ends, until the
    /// returned closure takes the watch off again (when the stream ends on its own, so a
    /// kept-alive connection does not collect one watch per stream).
    static func install(on channel: any Channel, _ onClose: @escaping @Sendable () -> Void) async -> @Sendable () -> Void {
        let name = "tributary.peer-closed.\(UInt64.random(in: 0...UInt64.max))"
        let handler = Handler(onClose)
        // A client that reset the connection right after its request is gone before the watch
        // is on: no `channelInactive` will come, and the response body (whose end frees the
        // stream's slot) is never run. So the channel's close (past or to come) fires it too,
        // and a pipeline that takes no handler any more counts as closed now.
        let installed = try? await channel.eventLoop.submit { () -> Bool in
            try channel.pipeline.syncOperations.addHandler(handler, name: name, position: .first)
            // Runs at once on a channel already closed, else when it closes.
            channel.closeFuture.whenComplete { _ in handler.fire() }
            return true
        }.get()
        if installed != true { onClose() }
        return { channel.pipeline.removeHandler(name: name, promise: nil) }
    }

    private final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        let onClose: @Sendable () -> Void
        private var fired = false

        init(_ onClose: @escaping @Sendable () -> Void) { self.onClose = onClose }

        func fire() {
            guard !fired else { return }
            fired = true
            onClose()
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ChannelEvent, event == .inputClosed { fire() }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            fire()
            context.fireChannelInactive()
        }
    }
}
