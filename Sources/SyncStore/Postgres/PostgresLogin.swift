import Logging
import PostgresNIO
import SyncCore

extension PostgresDriver {
    /// One direct login with the store's settings, to tell at once what retrying cannot mend:
    /// a wrong password or user, or a database that does not exist (the pool would retry them
    /// until its deadline and report only that the database cannot be reached). A server
    /// that does not answer is not an error here: the pool's deadline reports it.
    static func checkLogin(url: String, timeout: Duration = .seconds(5), logger: Logger) async throws {
        let configuration = try PostgresURL.connectionConfiguration(url)
        do {
            let connection = try await withDeadline(timeout, onTimeout: { SyncStoreError.unavailable("no answer") }) {
                try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            }
            try? await connection.close()
        } catch let error as PSQLError where error.code == .server {
            let state = error.serverInfo?[.sqlState] ?? ""
            let user = configuration.username, database = configuration.database ?? ""
            switch state {
            case "28P01":
                throw PostgresLoginError(description: "password authentication failed for user \"\(user)\" (check the password in the URL)")
            case "28000":
                throw PostgresLoginError(description: "the server refuses user \"\(user)\" (an unknown user, or one pg_hba.conf does not admit)")
            case "3D000":
                throw PostgresLoginError(description: "database \"\(database)\" does not exist (create it, or name another in the URL)")
            default:
                return
            }
        } catch {
            return
        }
    }
}

/// A login that cannot succeed however often it is tried: the wrong password, an unknown
/// user or database. Its description never contains the password.
public struct PostgresLoginError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
