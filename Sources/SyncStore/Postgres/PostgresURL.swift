import Foundation
import PostgresNIO

/// Turns `postgres://USER[:PASS]@HOST[:PORT]/DB[?sslmode=disable|prefer|require]` into a client configuration.
public enum PostgresURL {
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public static func configuration(_ url: String) throws -> PostgresClient.Configuration {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw Invalid(description: "not a postgres:// URL")
        }
        guard let host = parts.host, !host.isEmpty else { throw Invalid(description: "the URL names no host") }
        guard let user = parts.user, !user.isEmpty else { throw Invalid(description: "the URL names no user") }
        let database = parts.path.hasPrefix("/") ? String(parts.path.dropFirst()) : parts.path
        guard !database.isEmpty else { throw Invalid(description: "the URL names no database") }
        let mode = parts.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        let tls: PostgresClient.Configuration.TLS
        switch mode {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
        default: throw Invalid(description: "sslmode must be disable, prefer or require")
        }
        return PostgresClient.Configuration(
            host: host, port: parts.port ?? 5432, username: user, password: parts.password, database: database, tls: tls)
    }
}
