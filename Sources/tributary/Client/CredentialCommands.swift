import ArgumentParser
import Foundation
import SyncCore

/// `tributary credential add|list|show|rotate-secret|delete` (docs/credentials.md). Secrets
/// come from a file or standard input, never from the command line (where `ps` shows them).
struct CredentialCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credential", abstract: "Manage credentials on a server (secrets are write-only).",
        subcommands: [Add.self, List.self, Show.self, RotateSecret.self, Delete.self])

    /// A JSON object given inline or as `@file`.
    static func object(_ text: String, flag: String) throws -> JSONObject {
        var text = text
        if text.hasPrefix("@") {
            do {
                text = try BoundedFile.text(String(text.dropFirst()), limit: 1 << 20)
            } catch {
                throw CommandFailure("\(flag): \(text.dropFirst()): \(error)", exitCode: 3)
            }
        }
        guard let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), let object = parsed.objectValue else {
            throw CommandFailure("\(flag) must be a JSON object (or @file holding one)", exitCode: 3)
        }
        return object
    }

    /// The secret fields of every type: never given inline on the command line.
    static let secretFields: Set<String> = Set(CredentialType.allCases.flatMap(\.secretFields))

    /// A secret's text: one line (a final LF or CRLF dropped); more lines are refused.
    static func oneLine(_ text: String, from source: String, field: String) throws -> String {
        var text = Substring(text)
        if text.hasSuffix("\r\n") { text = text.dropLast(2) } else if text.hasSuffix("\n") { text = text.dropLast() }
        if text.contains(where: { $0 == "\n" || $0 == "\r" }) {
            throw CommandFailure("\(field) from \(source): more than one line; a secret is one line", exitCode: 3)
        }
        return String(text)
    }

    /// A secret from `@file` or `-` (standard input), one line.
    static func secret(_ source: String, field: String, option: String = "--secret FIELD=…") throws -> String {
        let raw: String
        if source == "-" {
            // At most 64 KiB of standard input.
            guard let data = try? FileHandle.standardInput.read(upToCount: 64 * 1024), let text = String(data: data, encoding: .utf8) else {
                throw CommandFailure("\(field): standard input is empty or not UTF-8 text", exitCode: 3)
            }
            raw = text
        } else if source.hasPrefix("@") {
            do {
                raw = try BoundedFile.text(String(source.dropFirst()), limit: 64 * 1024)
            } catch {
                throw CommandFailure("\(field) from \(source): \(error)", exitCode: 3)
            }
        } else {
            throw CommandFailure("\(option) takes @file or - (standard input), never the secret itself", exitCode: 3)
        }
        let text = try oneLine(raw, from: source, field: field)
        guard !text.isEmpty else { throw CommandFailure("\(field) from \(source) is empty", exitCode: 3) }
        return text
    }

    /// `FIELD=@file` or `FIELD=-` pairs into config members.
    static func secrets(_ specs: [String]) throws -> JSONObject {
        var out = JSONObject()
        for spec in specs {
            guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
                throw CommandFailure("--secret must be FIELD=@file or FIELD=-", exitCode: 3)
            }
            let field = String(spec[..<eq])
            out[field] = .string(try secret(String(spec[spec.index(after: eq)...]), field: field))
        }
        return out
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a credential.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The credential's name.") var name: String
        @Option(help: "bearer, basic, api_key, oauth2_client_credentials or oauth2_refresh_token.") var type: String
        @Option(help: "The type's fields: JSON, or @file to read it from a file.") var config: String = "{}"
        @Option(help: "FIELD=@file or FIELD=- (standard input): a secret field (repeatable).") var secret: [String] = []

        func run() async throws {
            var fields = try CredentialCommand.object(config, flag: "--config")
            // Inline JSON sits in the shell's history and in `ps`: no secret there.
            if !config.hasPrefix("@"), let named = fields.keys.sorted().first(where: { CredentialCommand.secretFields.contains($0) }) {
                throw CommandFailure("--config names \(named) inline; give secrets with --secret \(named)=@file or --secret \(named)=-", exitCode: 3)
            }
            fields.merge(try CredentialCommand.secrets(secret)) { _, new in new }
            let body: JSONValue = .object(["name": .string(name), "type": .string(type), "config": .object(fields)])
            let made = try await connection.connection.call(.POST, "/v1/credentials", body: body)
            if connection.json { Output.json(made) } else { print("created credential \(Output.text(made["name"])) (\(Output.text(made["id"])))") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List credentials (never their secrets).")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let items = try await connection.allItems("/v1/credentials")
            if connection.json { return Output.json(.array(items)) }
            Output.table(["NAME", "TYPE", "STATUS", "SOURCES", "TOKEN EXPIRES", "LAST REFRESH", "ID"], items.map { c in
                [Output.text(c["name"]), Output.text(c["type"]), Output.text(c["status"]), Output.text(c["sources"]),
                 Output.text(c["token_expires_at"]), Output.text(c["last_refresh_at"]), Output.text(c["id"])]
            })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one credential (secrets appear as ***).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws { Output.json(try await connection.connection.call(.GET, "/v1/credentials/\(PathSegment.encode(name))")) }
    }

    struct RotateSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-secret",
            abstract: "Replace a secret field (read from a file or standard input); the credential is active again.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @Argument(help: "The secret field: token, password, value, client_secret or refresh_token.") var field: String
        @Option(help: "@file or - (standard input, the default).") var from: String = "-"

        func run() async throws {
            let path = "/v1/credentials/\(PathSegment.encode(name))"
            let shown = try await connection.connection.call(.GET, path)
            let type = shown["type"]?.stringValue.flatMap(CredentialType.init(rawValue:))
            guard let type, type.secretFields.contains(field) else {
                throw CommandFailure("\(field) is not a secret of a \(type?.rawValue ?? "?") credential (its secrets: \(type?.secretFields.joined(separator: ", ") ?? "?"))", exitCode: 3)
            }
            let value = try CredentialCommand.secret(from, field: field, option: "--from")
            let body: JSONValue = .object(["config": .object([field: .string(value)])])
            let updated = try await connection.connection.call(.PATCH, path, body: body)
            if connection.json { Output.json(updated) } else { print("replaced \(field) of credential \(name) (status \(Output.text(updated["status"])))") }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a credential no source uses.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws {
            _ = try await connection.connection.call(.DELETE, "/v1/credentials/\(PathSegment.encode(name))")
            if !connection.json { print("deleted credential \(name)") }
        }
    }
}
