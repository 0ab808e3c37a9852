import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TCP server on loopback that answers every request with the same bytes, whatever they
/// are (a status line no HTTP server library would write: `HTTP/1.1 000`), then closes the
/// connection. For upstreams and webhook receivers that break the protocol.
public final class RawResponder: Sendable {
    public let port: Int
    private let listener: Int32
    private final class Count: Sendable { let value = Mutex(0) }
    private let answered = Count()

    /// How many requests were answered.
    public var requests: Int { answered.value.withLock { $0 } }

    public init(answer: String) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TimedOut(description: "no socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else { close(fd); throw TimedOut(description: "no listening socket") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        let bytes = Array(answer.utf8)
        let thread = Thread { [answered] in
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                // Read the request head (a POST's body may follow; it is not needed).
                var buffer = [UInt8](repeating: 0, count: 65536)
                var seen: [UInt8] = []
                while !seen.suffix(4).elementsEqual([13, 10, 13, 10]) && !String(decoding: seen, as: UTF8.self).contains("\r\n\r\n") {
                    let n = read(client, &buffer, buffer.count)
                    if n <= 0 { break }
                    seen += buffer[0..<n]
                }
                answered.value.withLock { $0 += 1 }
                _ = bytes.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                shutdown(client, Int32(SHUT_WR))
                close(client)
            }
        }
        thread.start()
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Stops accepting.
    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}
