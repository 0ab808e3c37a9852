import Crypto

/// A configured token may be the SHA-256 of the token instead of the token
/// (`sha256:<64 hex digits>`): the configuration then holds nothing a client could send.
public enum TokenDigest {
    public static let prefix = "sha256:"

    /// `sha256:` and the lowercase hex of `token`'s SHA-256.
    public static func of(_ token: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: Array(token.utf8)) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0f)])
        }
        return prefix + String(decoding: hex, as: UTF8.self)
    }

    /// A configured digest in lowercase, or `nil` when it is not `sha256:` and 64 hex digits.
    public static func normalized(_ entry: String) -> String? {
        guard entry.hasPrefix(prefix) else { return nil }
        let hex = entry.utf8.dropFirst(prefix.utf8.count)
        guard hex.count == 64, hex.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }) else { return nil }
        return prefix + String(decoding: hex.map { $0 >= 0x41 && $0 <= 0x46 ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// What a configured entry stands for: its digest (a token and its digest are one).
    public static func identity(_ entry: String) -> String {
        normalized(entry) ?? of(entry)
    }
}
