import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// RFC 9112 §9.3 on the HTTP/1 side of the codec, where the request's version is still
/// known: a request that does not keep its connection alive (HTTP/1.0 without
/// `Connection: keep-alive`, or `Connection: close` in any case or list) reaches Hummingbird
/// with exactly `Connection: close`, the one spelling it closes the connection after the
/// response for, and the response says `Connection: close`. An HTTP/1.0 client was held
/// until the idle timeout (30 s) instead.
final class KeepAliveRule: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Requests read whose responses have not started, oldest first: whether each closes.
    private var closes: [Bool] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        var close = !head.isKeepAlive
        // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any with two, is a 400. The
        // count is only known here (HTTPTypes keeps one authority); it travels to the problem
        // middleware as a mark no client can set, and the connection closes after the answer.
        head.headers.remove(name: Self.hostFault)
        let hosts = head.headers["host"].count
        if hosts > 1 || (hosts == 0 && (head.version.major > 1 || head.version.minor >= 1)) {
            head.headers.add(name: Self.hostFault, value: hosts > 1 ? "several" : "none")
            close = true
        }
        closes.append(close)
        if close { head.headers.replaceOrAdd(name: "connection", value: "close") }
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head(var head) = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        // An interim (1xx) response is not the request's answer.
        if head.status.code >= 200, !closes.isEmpty, closes.removeFirst() {
            head.headers.replaceOrAdd(name: "connection", value: "close")
        }
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }

    /// The mark of a request whose Host is missing or repeated (its value says which).
    static let hostFault = "x-tributary-host-fault"

    /// Installs the rule just before Hummingbird's HTTP/1 codec on `pipeline`.
    static func install(on pipeline: ChannelPipeline.SynchronousOperations) {
        guard let codec = try? pipeline.handler(type: HTTP1ToHTTPServerCodec.self) else { return }
        try? pipeline.addHandler(KeepAliveRule(), position: .before(codec))
    }
}
