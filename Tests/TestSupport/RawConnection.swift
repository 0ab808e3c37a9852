import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection to a loopback port, for tests that speak (or half speak) HTTP by
/// hand: partial request lines, oversized headers, connections that never finish.
public final class RawConnection: @unchecked Sendable {
    // @unchecked: the descriptor is set once in init; each test uses a connection from one task.
    public let fd: Int32

    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClusterError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw ClusterError("connect() to port \(port) failed")
        }
    }

    deinit { close(fd) }

    public func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Reads until what arrived satisfies `done`, the peer closes or `timeout` passes.
    public func read(until done: (String) -> Bool, timeout: Duration) async -> String {
        let deadline = ContinuousClock.now + timeout
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 0) > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                data += buffer[0..<n]
                if done(String(decoding: data, as: UTF8.self)) { break }
            } else {
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Connects, sends `text` and resets the connection at once (`SO_LINGER` 0: an RST, no
    /// FIN), as a client that gives up right after asking does.
    public static func sendAndReset(port: Int, _ text: String) throws {
        let connection = try RawConnection(port: port)
        connection.send(text)
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(connection.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        // The descriptor closes (with the RST) as the object goes.
    }

    /// Ends the connection in both directions now (the descriptor closes with the object).
    public func hangUp() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    /// Reads until the peer closes or `timeout` passes; returns what arrived and whether it closed.
    public func readUntilClosed(timeout: Duration) async -> (text: String, closed: Bool) {
        let fd = fd
        let deadline = ContinuousClock.now + timeout
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 0)
            if ready > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { return (String(decoding: data, as: UTF8.self), true) }
                data += buffer[0..<n]
            } else {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        return (String(decoding: data, as: UTF8.self), false)
    }
}
