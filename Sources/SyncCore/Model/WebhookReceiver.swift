import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension WebhookTarget {
    /// `url`'s receiver: its origin, `scheme://host:port`, with the scheme and host in
    /// lowercase, the port spelled out, and an IP address in its one canonical form (`127.1`,
    /// `0x7f.0.0.1`, `2130706433` and `[::ffff:127.0.0.1]` are all `127.0.0.1`; `[0::1]` is
    /// `[::1]`; a zone and a host name's final dot are dropped). A URL it cannot read is its
    /// own receiver.
    public static func receiver(of url: String) -> String {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(), let host = parts.host,
              !host.isEmpty else { return url }
        let port = parts.port ?? (scheme == "https" ? 443 : 80)
        return "\(scheme)://\(canonicalHost(host)):\(port)"
    }

    static func canonicalHost(_ host: String) -> String {
        var name = host.lowercased()
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if let zone = name.firstIndex(of: "%") { name = String(name[..<zone]) }
        var v6 = in6_addr()
        if name.contains(":"), inet_pton(AF_INET6, name, &v6) == 1 {
            let bytes = withUnsafeBytes(of: v6) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
                return bytes[12...].map(String.init).joined(separator: ".")  // IPv4-mapped: the IPv4 address
            }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &v6, &text, socklen_t(text.count)) != nil else { return "[\(name)]" }
            return "[" + String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "]"
        }
        var v4 = in_addr()
        if name.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || $0 == UInt8(ascii: "x") }),
           inet_aton(name, &v4) != 0 {
            let address = UInt32(bigEndian: v4.s_addr)
            return [24, 16, 8, 0].map { String((address >> UInt32($0)) & 0xFF) }.joined(separator: ".")
        }
        while name.hasSuffix(".") { name.removeLast() }
        return name
    }
}
