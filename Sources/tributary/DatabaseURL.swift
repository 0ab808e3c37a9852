import Foundation
import Logging
import SyncCore
import SyncStore

/// A `--database` value: `sqlite:PATH` (default `sqlite:tributary.sqlite`) or `postgres://…`.
enum DatabaseURL {
    case sqlite(path: String)
    case postgres(String)

    static let environmentKey = "TRIBUTARY_DATABASE_URL"
    static let defaultValue = "sqlite:tributary.sqlite"

    static func parse(_ raw: String) throws -> DatabaseURL {
        if raw.hasPrefix("sqlite:") {
            var path = String(raw.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw CommandFailure("--database sqlite: needs a path, e.g. sqlite:tributary.sqlite", exitCode: 3) }
            return .sqlite(path: path)
        }
        if raw.hasPrefix("postgres://") || raw.hasPrefix("postgresql://") { return .postgres(raw) }
        // Never echo the value: a mistyped scheme still carries the password.
        let scheme = raw.range(of: "://").map { String(raw[..<$0.lowerBound].prefix(20)) + "://…" } ?? "a value without sqlite: or postgres://"
        throw CommandFailure("--database must be sqlite:PATH or postgres://USER[:PASS]@HOST:PORT/DB, got \(scheme)", exitCode: 3)
    }

    /// Opens the store and starts its connections (without migrating).
    func open(keyring: SecretKeyring = .none) throws -> DatabaseStore {
        switch self {
        case .sqlite(let path):
            do {
                return try DatabaseStore.sqlite(path: path, keyring: keyring).start()
            } catch {
                throw CommandFailure("cannot open SQLite database at \(path): \(error)")
            }
        case .postgres(let url):
            do {
                return try DatabaseStore.postgres(url: url, keyring: keyring).start()
            } catch {
                throw CommandFailure("--database: \(SecretRedaction.redactText("\(error)"))", exitCode: 3)
            }
        }
    }

    /// Migrates a freshly opened store; an unreachable database fails within seconds with one line.
    func migrate(_ store: DatabaseStore) async throws {
        if case .postgres(let url) = self {
            do {
                try await DatabaseStore.checkPostgresLogin(url: url, logger: Logger(label: "tributary.postgres"))
            } catch {
                await store.close()
                throw CommandFailure("database \(redacted): \(SecretRedaction.redactText("\(error)"))")
            }
        }
        do {
            try await store.migrate()
        } catch {
            await store.close()
            throw CommandFailure("database \(redacted) is not usable: \(SecretRedaction.redactText("\(error)"))")
        }
    }

    /// How the database is named in logs (no password).
    var redacted: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let url):
            // A password may also ride in the query (`?password=…`).
            SecretRedaction.redactText(url.lastIndex(of: "@").map { "postgres://…" + url[$0...] } ?? url)
        }
    }
}
