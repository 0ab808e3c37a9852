import Hummingbird
import Logging

/// Runs `router` on a free port of `host` (quiet logs); returns the running task and the port.
func startLoopback(_ router: Router<BasicRequestContext>, host: String, label: String) async -> (Task<Void, any Error>, Int) {
    let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
    var logger = Logger(label: label)
    logger.logLevel = .critical
    let app = Application(router: router, configuration: .init(address: .hostname(host, port: 0)),
                          onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
    let task = Task { try await app.run() }
    var iterator = stream.makeAsyncIterator()
    return (task, await iterator.next() ?? 0)
}
