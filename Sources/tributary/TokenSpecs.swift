import SyncServer

/// `--token ROLE:TOKEN` (repeatable) and `TRIBUTARY_TOKENS="ROLE:TOKEN,ROLE:TOKEN"`; a
/// TOKEN written `sha256:<hex>` is the SHA-256 of the token (``TokenDigest``).
///
/// Strict, because a mistake here is a security mistake: spaces around an entry or a token
/// are trimmed (a trailing space would otherwise be part of the secret), an empty or
/// malformed entry is refused and named by its place and role (never by its token), and a
/// token given twice is refused, for two roles (which one would win?) as for one.
enum TokenSpecs {
    static func parse(flags: [String], environment: String?) throws -> [String: TokenRole] {
        var entries = flags.enumerated().map { ("--token #\($0.offset + 1)", $0.element) }
        if let environment {
            let parts = environment.split(separator: ",", omittingEmptySubsequences: false)
            // A trailing comma is tolerated; an empty entry in the middle is a mistake.
            let trimmedParts = parts.last?.trimmingCharacters(in: .whitespaces).isEmpty == true ? parts.dropLast() : parts[...]
            entries += trimmedParts.enumerated().map { ("TRIBUTARY_TOKENS entry \($0.offset + 1)", String($0.element)) }
        }
        var map: [String: TokenRole] = [:]
        var roles: [String: TokenRole] = [:]
        var origin: [String: String] = [:]
        for (place, raw) in entries {
            let spec = raw.trimmingCharacters(in: .whitespaces)
            guard let colon = spec.firstIndex(of: ":") else {
                throw CommandFailure("\(place) is not ROLE:TOKEN (no colon)", exitCode: 3)
            }
            let roleText = spec[..<colon].trimmingCharacters(in: .whitespaces)
            let token = spec[spec.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard let role = TokenRole(rawValue: roleText) else {
                // Never quoted: written the wrong way round (`TOKEN:admin`), it is the secret.
                throw CommandFailure("\(place): the role before the colon is neither admin nor viewer (write ROLE:TOKEN)", exitCode: 3)
            }
            guard !token.isEmpty else { throw CommandFailure("\(place) (\(role.rawValue)) has an empty token", exitCode: 3) }
            guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw CommandFailure("\(place) (\(role.rawValue)): a token is printable ASCII without spaces", exitCode: 3)
            }
            // `sha256:<64 hex digits>`: the digest of the token, not the token (nothing to
            // hide in the configuration); a token and its digest are one token.
            let entry: String
            if token.hasPrefix(TokenDigest.prefix) {
                guard let digest = TokenDigest.normalized(token) else {
                    throw CommandFailure("\(place) (\(role.rawValue)): a sha256: token is the 64 hexadecimal digits of the token's SHA-256", exitCode: 3)
                }
                entry = digest
            } else {
                entry = token
            }
            let identity = TokenDigest.identity(entry)
            if let first = origin[identity] {
                throw CommandFailure("\(place) (\(role.rawValue)) repeats the token of \(first) (\(roles[identity]?.rawValue ?? "")): give each token once", exitCode: 3)
            }
            map[entry] = role
            roles[identity] = role
            origin[identity] = place
        }
        return map
    }
}
