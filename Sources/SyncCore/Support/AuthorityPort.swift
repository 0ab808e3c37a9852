/// The port a URL's authority writes, read from the text itself: Foundation reads a port too
/// long for an `Int` as no port at all (the default one), and lower layers cut a port past
/// 65535 to 16 bits (a connection to `:85135` went to 19599).
public enum AuthorityPort {
    /// Whether the port `url` writes, if any, is 1–65535 in plain digits (an empty port, as
    /// RFC 3986 allows, means the default).
    public static func isValid(in url: String) -> Bool {
        guard let text = written(in: url) else { return true }
        return text.isEmpty || (text.count <= 5 && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } && (1...65535).contains(Int(text) ?? 0))
    }

    /// The text after the host's `:` in the authority of `url` (`nil` when it writes none).
    public static func written(in url: String) -> Substring? {
        guard let start = url.range(of: "://")?.upperBound else { return nil }
        let authority = url[start...].prefix { !"/?#".contains($0) }
        let hostAndPort = authority.lastIndex(of: "@").map { authority[authority.index(after: $0)...] } ?? authority
        let afterHost = hostAndPort.lastIndex(of: "]").map { hostAndPort[hostAndPort.index(after: $0)...] } ?? hostAndPort
        guard let colon = afterHost.firstIndex(of: ":") else { return nil }
        return afterHost[afterHost.index(after: colon)...]
    }
}
