import ArgumentParser
import Foundation
import Logging
import SyncStore

/// `--secret-key-file F` (repeatable) and `TRIBUTARY_SECRET_KEY`: the keys that seal secrets
/// at rest (docs/credentials.md, "Secrets at rest"). The first key seals; every one opens.
struct SecretKeyOptions: ParsableArguments {
    static let environmentKey = "TRIBUTARY_SECRET_KEY"

    @Option(name: .customLong("secret-key-file"),
            help: "A file holding a secret key, the base64 of 32 bytes (repeatable: the first seals, every one opens; env TRIBUTARY_SECRET_KEY).")
    var secretKeyFiles: [String] = []

    /// The keys of the files in order, then the environment's. Errors name the file, never a key.
    func keyring(environment: [String: String]) throws -> SecretKeyring {
        var keys: [[UInt8]] = []
        for path in secretKeyFiles {
            do {
                keys.append(try SecretKeyring.decodeKey(try BoundedFile.text(path, limit: 4096)))
            } catch {
                throw CommandFailure("--secret-key-file \(path): \(error)", exitCode: 3)
            }
        }
        if let text = environment[Self.environmentKey], !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            do {
                keys.append(try SecretKeyring.decodeKey(text))
            } catch {
                throw CommandFailure("\(Self.environmentKey): \(error)", exitCode: 3)
            }
        }
        return try SecretKeyring(rawKeys: keys)
    }

    /// Refuses a store holding secrets sealed with a key the keyring lacks (closing it), and
    /// warns once when new secrets would be stored in the clear.
    static func check(_ store: DatabaseStore, logger: Logger?) async throws {
        let missing = try await store.sealedKeyIDs().subtracting(store.keyring.keys.map(\.id))
        if !missing.isEmpty {
            await store.close()
            throw CommandFailure("the database holds secrets sealed with key \(missing.sorted().joined(separator: ", ")), "
                                     + "which no --secret-key-file or \(environmentKey) gives", exitCode: 3)
        }
        if !store.keyring.isSealing {
            logger?.warning("no secret key given: new secrets are stored in the clear (give one with --secret-key-file or \(environmentKey); docs/credentials.md)")
        }
    }
}

/// `tributary secrets rotate`: seals every stored secret again under the first key.
struct SecretsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets", abstract: "Manage the keys that seal secrets at rest.", subcommands: [Rotate.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Seal every stored secret again under the first key (in batches, while the service runs).")

        @Option(help: "sqlite:PATH or postgres://USER[:PASS]@HOST:PORT/DB (env TRIBUTARY_DATABASE_URL).")
        var database: String?

        @OptionGroup var keys: SecretKeyOptions

        @Flag(help: "Store every secret in the clear again (the keys given only open).")
        var clear = false

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            var keyring = try keys.keyring(environment: environment)
            keyring.sealsNewValues = !clear
            if !clear && !keyring.isSealing {
                throw CommandFailure("secrets rotate needs the key to seal with (--secret-key-file NEW, then the old ones), or --clear", exitCode: 3)
            }
            let url = try DatabaseURL.parse(database ?? environment[DatabaseURL.environmentKey] ?? DatabaseURL.defaultValue)
            if case .sqlite(let path) = url, !FileManager.default.fileExists(atPath: path) {
                throw CommandFailure("no SQLite database at \(path)", exitCode: 3)
            }
            let store = try url.open(keyring: keyring)
            try await url.migrate(store)
            let missing = try await store.sealedKeyIDs().subtracting(keyring.keys.map(\.id))
            if !missing.isEmpty {
                await store.close()
                throw CommandFailure("the database holds secrets sealed with key \(missing.sorted().joined(separator: ", ")), "
                                         + "which no --secret-key-file or \(SecretKeyOptions.environmentKey) gives", exitCode: 3)
            }
            let count: Int
            do {
                count = try await store.resealSecrets()
            } catch {
                await store.close()
                throw CommandFailure("rotation stopped: \(error)")
            }
            await store.close()
            print(keyring.sealingKeyID.map { "sealed the secrets of \(count) row(s) again under key \($0)" }
                  ?? "stored the secrets of \(count) row(s) in the clear (no key given)")
        }
    }
}
