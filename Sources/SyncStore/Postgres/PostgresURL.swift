import Foundation
import SyncCore
import NIOSSL
import PostgresNIO

/// Turns `postgres://USER[:PASS]@HOST[:PORT]/DB[?sslmode=disable|prefer|require]` into a client configuration.
public enum PostgresURL {
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public static func configuration(_ url: String) throws -> PostgresClient.Configuration {
        let p = try parts(url)
        let tls: PostgresClient.Configuration.TLS = switch p.tls {
        case .disable: .disable
        case .prefer: .prefer(.makeClientConfiguration())
        case .require: .require(.makeClientConfiguration())
        }
        return PostgresClient.Configuration(host: p.host, port: p.port, username: p.user, password: p.password, database: p.database, tls: tls)
    }

    /// The same settings for one direct connection (the start-up login check).
    static func connectionConfiguration(_ url: String) throws -> PostgresConnection.Configuration {
        let p = try parts(url)
        let tls: PostgresConnection.Configuration.TLS = switch p.tls {
        case .disable: .disable
        case .prefer: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        return PostgresConnection.Configuration(host: p.host, port: p.port, username: p.user, password: p.password, database: p.database, tls: tls)
    }

    enum TLSMode { case disable, prefer, require }

    struct Parts {
        var host: String
        var port: Int
        var user: String
        var password: String?
        var database: String
        var tls: TLSMode
    }

    static func parts(_ url: String) throws -> Parts {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw Invalid(description: "not a postgres:// URL")
        }
        guard let host = parts.host, !host.isEmpty else { throw Invalid(description: "the URL names no host") }
        // A port past 65535 would be cut to 16 bits and the password sent to another port.
        guard AuthorityPort.isValid(in: url) else {
            throw Invalid(description: "the URL's port must be 1-65535")
        }
        guard let user = parts.user, !user.isEmpty else { throw Invalid(description: "the URL names no user") }
        let database = parts.path.hasPrefix("/") ? String(parts.path.dropFirst()) : parts.path
        guard !database.isEmpty else { throw Invalid(description: "the URL names no database") }
        let mode = parts.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        let tls: TLSMode
        switch mode {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer
        case "require", "verify-ca", "verify-full": tls = .require
        default: throw Invalid(description: "sslmode must be disable, prefer or require")
        }
        return Parts(host: host, port: parts.port ?? 5432, user: user, password: parts.password, database: database, tls: tls)
    }
}
