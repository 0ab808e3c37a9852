import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// A response whose status is outside 100...599, which RFC 9110 §15 calls invalid.
public struct InvalidStatusLine: Error, CustomStringConvertible, Sendable {
    public let code: UInt
    public var description: String { "the answer's status \(code) is outside 100...599" }
}

/// Ends a connection whose response status is outside 100...599 before AsyncHTTPClient reads
/// it. AsyncHTTPClient 1.37 takes a status under 100 for an informational answer, ignores its
/// head and then traps on its body (a precondition): one upstream or webhook receiver
/// answering `HTTP/1.1 000` stopped the node, and the retry of that sync or delivery stopped
/// it again after every restart.
final class StatusLineGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart
    private var refused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        if case .head(let head) = unwrapInboundIn(data), !(100...599).contains(head.status.code) {
            refused = true
            context.fireErrorCaught(InvalidStatusLine(code: head.status.code))
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

extension HTTPClient.Configuration {
    /// Every HTTP/1.1 connection of this client gets a ``StatusLineGuard`` right after its
    /// response decoder, and the client speaks HTTP/1.1 only (the guard's one path).
    public mutating func guardStatusLines() {
        httpVersion = .http1Only
        http1_1ConnectionDebugInitializer = { channel in
            @Sendable func add() throws {
                let pipeline = channel.pipeline.syncOperations
                let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self)
                try pipeline.addHandler(StatusLineGuard(), position: .after(decoder))
            }
            // Called on the connection's event loop: no hop (a new connection per page, as with
            // an HTTP/1.0 upstream, paid one each).
            if channel.eventLoop.inEventLoop { return channel.eventLoop.makeCompletedFuture { try add() } }
            return channel.eventLoop.submit { try add() }
        }
    }
}
