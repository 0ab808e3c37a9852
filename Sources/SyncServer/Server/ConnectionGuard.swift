import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import SyncCore

/// Per-connection protection that Hummingbird leaves to the application, in one channel
/// handler behind the HTTP codec (before authentication, so it holds for anonymous clients):
///
/// - a request's body must arrive within `requestReadTimeout` of its head (a client that
///   trickles its body is cut off, so it cannot hold a connection slot for ever);
/// - headers over the decoder's limits get a `431` problem with a request id, not a bare
///   400 (RFC 6585 §5); any other malformed request gets a `400` problem.
///
/// Headers themselves are bounded by Hummingbird's idle timeout: no request part reaches
/// the pipeline until the whole head has arrived, so a connection that sends half a
/// request line is idle, and closed. The number of connections is bounded by the server's
/// `availableConnectionsDelegate` (see ``TributaryServer``).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let requestReadTimeout: TimeAmount
    private var readDeadline: Scheduled<Void>?

    init(requestReadTimeout: TimeAmount) {
        self.requestReadTimeout = requestReadTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            readDeadline?.cancel()
            let loop = context.eventLoop.assumeIsolatedUnsafeUnchecked()
            readDeadline = loop.scheduleTask(in: requestReadTimeout) { [weak self] in
                self?.readDeadline = nil
                context.close(promise: nil)
            }
        case .end:
            readDeadline?.cancel()
            readDeadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        KeepAliveRule.install(on: context.pipeline.syncOperations)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        readDeadline?.cancel()
        readDeadline = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        let problem: Problem
        switch parserError {
        case .closedConnection:
            // Bytes after a request that closes the connection (`Connection: close`, or
            // HTTP/1.0): they are not read (RFC 9112 §9.6). The request before them is
            // answered, then the connection closes; a 400 here would take that answer's place.
            return
        case .headerOverflow:
            problem = Problem(.init(code: 431, reasonPhrase: "Request Header Fields Too Large"), code: "headers_too_large",
                              title: "The request's headers are too large",
                              detail: "The request line and headers must fit in 80 KiB.")
        default:
            problem = Problem(.badRequest, code: "bad_request", title: "The request is not valid HTTP",
                              detail: "The request could not be parsed as HTTP/1.1 (\(parserError)).")
        }
        let requestID = Identifier.make("req")
        var withID = problem
        withID.extra["request_id"] = .string(requestID)
        let body = ByteBuffer(bytes: withID.body(instance: "", requestID: requestID))
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        headers[.xRequestID] = requestID
        headers[.connection] = "close"
        headers[.contentLength] = String(body.readableBytes)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: problem.status, headerFields: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
