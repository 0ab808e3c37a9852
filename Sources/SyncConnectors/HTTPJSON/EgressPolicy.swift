import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which upstream addresses sources may reach.
///
/// By default link-local and cloud metadata addresses and the unspecified addresses are
/// denied (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200, 0.0.0.0/8, `::`,
/// `metadata.google.internal`, …). A connection to an unspecified address reaches the
/// machine itself, so `0.0.0.0` and `::` are also judged as the loopback address they reach.
/// Rules are host names or CIDR blocks. An address or host on the allow list is
/// allowed even if a deny rule matches; otherwise any deny rule blocks it; anything
/// else is allowed. Names are resolved and every address is checked, and for plain
/// HTTP the request then goes to the vetted address itself, so a name that resolves
/// differently a moment later (DNS rebinding) cannot redirect it.
public struct EgressPolicy: Sendable {
    public var allow: [Rule]
    public var deny: [Rule]

    public static let defaultDeny: [Rule] = [
        "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/8", "::/128",
        "metadata.google.internal", "metadata.goog", "instance-data.ec2.internal",
    ].compactMap(Rule.init)

    public static let `default` = EgressPolicy()

    public init(allow: [Rule] = [], deny: [Rule] = []) {
        self.allow = allow
        self.deny = Self.defaultDeny + deny
    }

    /// A host name or a CIDR block.
    public enum Rule: Sendable, Equatable, CustomStringConvertible {
        case host(String)
        case network(address: [UInt8], prefix: Int)

        /// Parses `10.0.0.0/8`, `fd00::/8`, `1.2.3.4` (a /32), or a host name.
        public init?(_ text: String) {
            let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
            guard !trimmed.isEmpty else { return nil }
            // Empty pieces kept: `/`, `/8` and `10.0.0.0/` are malformed, not an index out of range.
            let parts = trimmed.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard !parts[0].isEmpty else { return nil }
            if let address = EgressPolicy.parseAddress(parts[0]) {
                // A rule written as a mapped IPv6 network (`::ffff:10.0.0.0/104`) is an IPv4 rule.
                let writtenAsIPv6 = parts[0].contains(":")
                let maxPrefix = writtenAsIPv6 ? 128 : address.count * 8
                guard let written = parts.count == 2 ? Int(parts[1]) : maxPrefix, (0...maxPrefix).contains(written) else { return nil }
                let prefix = writtenAsIPv6 && address.count == 4 ? written - 96 : written
                guard prefix >= 0 else { return nil }
                self = .network(address: address, prefix: prefix)
            } else {
                guard parts.count == 1, trimmed.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }) else { return nil }
                self = .host(trimmed)
            }
        }

        func matches(host: String) -> Bool {
            if case .host(let h) = self { return host.lowercased() == h || host.lowercased().hasSuffix("." + h) }
            return false
        }

        func matches(address: [UInt8]) -> Bool {
            guard case .network(let network, let prefix) = self, network.count == address.count else { return false }
            var bits = prefix
            for i in 0..<network.count where bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                if network[i] & mask != address[i] & mask { return false }
                bits -= 8
            }
            return true
        }

        public var description: String {
            switch self {
            case .host(let h): h
            case .network(let a, let p): "\(EgressPolicy.format(a))/\(p)"
            }
        }
    }

    /// Whether this literal host or address is allowed, before any resolution.
    func decide(host: String, address: [UInt8]?) -> Bool? {
        if allow.contains(where: { $0.matches(host: host) || (address.map($0.matches(address:)) ?? false) }) { return true }
        let reached = address.map(Self.reached)
        if deny.contains(where: { rule in
            rule.matches(host: host) || (address.map(rule.matches(address:)) ?? false) || (reached.map(rule.matches(address:)) ?? false)
        }) { return false }
        return nil
    }

    /// The address a connection to `address` actually reaches: the unspecified addresses
    /// (`0.0.0.0`, `::`) connect to the machine itself, as loopback; any other is itself.
    static func reached(_ address: [UInt8]) -> [UInt8] {
        guard address.allSatisfy({ $0 == 0 }) else { return address }
        return address.count == 4 ? [127, 0, 0, 1] : [UInt8](repeating: 0, count: 15) + [1]
    }

    /// Resolves `host` and checks every address; returns one allowed address to connect to.
    /// Throws `egress_blocked` (permanent) or `upstream_unavailable` when the name does not resolve.
    public func vet(host: String, port: Int) async throws -> [UInt8] {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let literal = Self.parseAddress(bare) {
            if decide(host: bare, address: literal) == false { throw Self.blocked(host, literal) }
            return literal
        }
        if decide(host: bare, address: nil) == false { throw Self.blocked(host, nil) }
        let addresses = try await Self.resolve(bare, port: port)
        guard !addresses.isEmpty else { throw SyncErrorFactory.unavailable("cannot resolve \(bare)") }
        // Host-level allow wins; otherwise every address must pass (a name with one metadata address is blocked).
        if allow.contains(where: { $0.matches(host: bare) }) { return addresses[0] }
        for address in addresses where decide(host: bare, address: address) == false { throw Self.blocked(host, address) }
        return addresses[0]
    }

    static func blocked(_ host: String, _ address: [UInt8]?) -> any Error {
        SyncErrorFactory.egressBlocked("the egress policy blocks \(host)" + (address.map { " (\(format($0)))" } ?? ""))
    }

    /// IPv4 (4 bytes) or IPv6 (16 bytes) from text; `nil` for names. An IPv6 spelling of an
    /// IPv4 address (see ``embeddedIPv4(_:)``) comes back as the 4-byte IPv4 address, so one
    /// rule matches every spelling of an address.
    public static func parseAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return embeddedIPv4(bytes) ?? bytes
        }
        return nil
    }

    /// The IPv4 address an IPv6 address stands for: IPv4-mapped `::ffff:a.b.c.d` (what a
    /// dual-stack socket connects to as IPv4), IPv4-compatible `::a.b.c.d` (deprecated, but
    /// still parsed) and the NAT64 well-known prefix `64:ff9b::a.b.c.d`. `::` and `::1` are not.
    public static func embeddedIPv4(_ address: [UInt8]) -> [UInt8]? {
        guard address.count == 16 else { return nil }
        let head = address.prefix(12), tail = Array(address.suffix(4))
        let mapped = head.prefix(10).allSatisfy { $0 == 0 } && head[10] == 0xFF && head[11] == 0xFF
        let compatible = head.allSatisfy { $0 == 0 } && tail.prefix(3).contains { $0 != 0 }
        let nat64 = Array(head) == [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0]
        return mapped || compatible || nat64 ? tail : nil
    }

    public static func format(_ address: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let family = address.count == 4 ? AF_INET : AF_INET6
        _ = address.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `getaddrinfo` off the cooperative pool (it blocks).
    static func resolve(_ host: String, port: Int) async throws -> [[UInt8]] {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                let addresses = resolveBlocking(host, port: port)
                if addresses.isEmpty {
                    continuation.resume(throwing: SyncErrorFactory.unavailable("cannot resolve \(host)"))
                } else {
                    continuation.resume(returning: addresses)
                }
            }
        }
    }

    /// Every address `host` resolves to (IPv4 spellings of IPv6 as IPv4, each once); empty
    /// when it does not resolve. Blocks: call it off the cooperative pool, or at startup.
    public static func resolveBlocking(_ host: String, port: Int) -> [[UInt8]] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var out: [[UInt8]] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let n = node {
            if n.pointee.ai_family == AF_INET, let sa = n.pointee.ai_addr {
                sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                    var a = p.pointee.sin_addr
                    out.append(withUnsafeBytes(of: &a) { Array($0) })
                }
            } else if n.pointee.ai_family == AF_INET6, let sa = n.pointee.ai_addr {
                sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    var a = p.pointee.sin6_addr
                    out.append(withUnsafeBytes(of: &a) { Array($0) })
                }
            }
            node = n.pointee.ai_next
        }
        var seen = Set<[UInt8]>()
        return out.map { embeddedIPv4($0) ?? $0 }.filter { seen.insert($0).inserted }
    }

    /// 127.0.0.0/8 or `::1`.
    public static func isLoopback(_ address: [UInt8]) -> Bool {
        address.count == 4 ? address[0] == 127 : address == [UInt8](repeating: 0, count: 15) + [1]
    }
}
