import ArgumentParser
import Foundation
import SyncStore

/// `tributary migrate`: brings the database schema up to date and exits.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the database schema, then exit.")

    @Option(help: "sqlite:PATH or postgres://USER[:PASS]@HOST:PORT/DB (env TRIBUTARY_DATABASE_URL).")
    var database: String?

    func run() async throws {
        let url = try DatabaseURL.parse(database ?? ProcessInfo.processInfo.environment[DatabaseURL.environmentKey] ?? DatabaseURL.defaultValue)
        let store = try url.open()
        try await url.migrate(store)
        await store.close()
        print("migrated \(url.redacted)")
    }
}
