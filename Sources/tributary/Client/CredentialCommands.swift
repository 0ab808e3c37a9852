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
            guard let contents = try? String(contentsOfFile: String(text.dropFirst()), encoding: .utf8) else {
                throw CommandFailure("\(flag): cannot read \(text.dropFirst())", exitCode: 3)
            }
            text = contents
        }
        guard let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), let object = parsed.objectValue else {
            throw CommandFailure("\(flag) must be a JSON object (or @file holding one)", exitCode: 3)
        }
        return object
    }

    /// A secret from `@file` (its first line) or `-` (the first line of standard input).
    static func secret(_ source: String, field: String) throws -> String {
        let text: String?
        if source == "-" {
            text = readLine(strippingNewline: true)
        } else if source.hasPrefix("@") {
            text = (try? String(contentsOfFile: String(source.dropFirst()), encoding: .utf8))?
                .split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init)
        } else {
            throw CommandFailure("--secret \(field)=… takes @file or - (standard input), never the secret itself", exitCode: 3)
        }
        guard let text, !text.isEmpty else { throw CommandFailure("no value for \(field) from \(source)", exitCode: 3) }
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
            var items: [JSONValue] = []
            var cursor: String?
            repeat {
                let page = try await connection.connection.call(.GET, "/v1/credentials?limit=1000" + (cursor.map { "&cursor=\($0)" } ?? ""))
                items += page["items"]?.arrayValue ?? []
                cursor = page["next_cursor"]?.stringValue
            } while cursor != nil
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
            let value = try CredentialCommand.secret(from, field: field)
            let body: JSONValue = .object(["config": .object([field: .string(value)])])
            let updated = try await connection.connection.call(.PATCH, "/v1/credentials/\(PathSegment.encode(name))", body: body)
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
