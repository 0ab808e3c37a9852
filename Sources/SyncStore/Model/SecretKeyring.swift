import Crypto
import Foundation

/// The keys that seal secrets at rest (docs/credentials.md, "Secrets at rest"): AES-256-GCM,
/// each sealed value carrying the id of its key, so keys can be rotated. The first key
/// seals; every key opens. Without a key, secrets are stored as they are.
///
/// A stored secret reads `enc:v1:<key id>:<base64 of nonce, ciphertext and tag>`, or, without
/// a key, the text itself (prefixed `plain:` when it starts like a sealed value).
public struct SecretKeyring: Sendable {
    public struct Key: Sendable {
        public let id: String
        let key: SymmetricKey
    }

    public let keys: [Key]
    public static let none = SecretKeyring(keys: [])

    init(keys: [Key]) { self.keys = keys }

    /// Keys from their 32 raw bytes each, in order (the first seals).
    public init(rawKeys: [[UInt8]]) throws {
        keys = try rawKeys.map { bytes in
            guard bytes.count == 32 else { throw SecretKeyError.wrongLength(bytes.count) }
            return Key(id: Self.id(of: bytes), key: SymmetricKey(data: bytes))
        }
    }

    /// A key from its base64 text (32 bytes; surrounding white space ignored).
    public static func decodeKey(_ text: String) throws -> [UInt8] {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: trimmed) else { throw SecretKeyError.notBase64 }
        guard data.count == 32 else { throw SecretKeyError.wrongLength(data.count) }
        return Array(data)
    }

    /// A key's id: 8 hex digits of a SHA-256 of the key (never the key).
    static func id(of bytes: [UInt8]) -> String {
        let digest = SHA256.hash(data: Array("tributary secret key id\n".utf8) + bytes)
        return digest.prefix(4).map { String(format: "%02x", $0) }.joined()
    }

    static let sealedPrefix = "enc:v1:"
    static let plainPrefix = "plain:"

    /// Whether new values are sealed (`false`: the keys only open, as when `secrets rotate
    /// --clear` stores everything in the clear again).
    public var sealsNewValues = true
    public var isSealing: Bool { !keys.isEmpty && sealsNewValues }
    public var sealingKeyID: String? { isSealing ? keys.first?.id : nil }

    static func associatedData(_ context: String) -> [UInt8] { Array(("tributary secret\n" + context).utf8) }

    /// `plain` as stored in `context` (the row and column it belongs to, e.g.
    /// `credential:cred_…:secrets`): the context is authenticated with it, so a sealed value
    /// moved to another row or column does not open.
    public func seal(_ plain: String, context: String) -> String {
        guard let key = keys.first, sealsNewValues else {
            return plain.hasPrefix(Self.sealedPrefix) || plain.hasPrefix(Self.plainPrefix) ? Self.plainPrefix + plain : plain
        }
        // Sealing with a fresh random nonce cannot fail for a 256-bit key.
        guard let box = try? AES.GCM.seal(Array(plain.utf8), using: key.key, authenticating: Self.associatedData(context)),
              let combined = box.combined else {
            preconditionFailure("AES-GCM sealing failed")
        }
        return Self.sealedPrefix + key.id + ":" + combined.base64EncodedString()
    }

    /// A stored value as text. Throws ``SecretKeyError/missingKey(_:)`` when it was sealed
    /// with a key this keyring lacks, ``SecretKeyError/damaged`` when it does not open.
    public func open(_ stored: String, context: String) throws -> String {
        if stored.hasPrefix(Self.plainPrefix) { return String(stored.dropFirst(Self.plainPrefix.count)) }
        guard stored.hasPrefix(Self.sealedPrefix) else { return stored }
        let rest = stored.dropFirst(Self.sealedPrefix.count)
        guard let colon = rest.firstIndex(of: ":") else { throw SecretKeyError.damaged }
        let id = String(rest[..<colon])
        guard let key = keys.first(where: { $0.id == id }) else { throw SecretKeyError.missingKey(id) }
        guard let data = Data(base64Encoded: String(rest[rest.index(after: colon)...])),
              let box = try? AES.GCM.SealedBox(combined: data),
              let plain = try? AES.GCM.open(box, using: key.key, authenticating: Self.associatedData(context)) else { throw SecretKeyError.damaged }
        return String(decoding: plain, as: UTF8.self)
    }

    /// The id of the key that sealed a stored value (`nil`: stored in the clear).
    public static func keyID(of stored: String) -> String? {
        guard stored.hasPrefix(sealedPrefix) else { return nil }
        let rest = stored.dropFirst(sealedPrefix.count)
        return rest.firstIndex(of: ":").map { String(rest[..<$0]) }
    }
}

public enum SecretKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    case notBase64
    case wrongLength(Int)
    /// A stored secret was sealed with a key none of the given keys is.
    case missingKey(String)
    case damaged

    public var description: String {
        switch self {
        case .notBase64: "a secret key must be the base64 of 32 bytes (e.g. `openssl rand -base64 32`)"
        case .wrongLength(let n): "a secret key must be 32 bytes, this one is \(n)"
        case .missingKey(let id): "a stored secret was sealed with key \(id), which was not given (--secret-key-file or TRIBUTARY_SECRET_KEY)"
        case .damaged: "a stored secret does not open with its key (damaged, altered, or moved from another row)"
        }
    }
}
