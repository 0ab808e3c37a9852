import ArgumentParser
import Foundation
import SyncCore

/// `tributary source add|list|show|remove`.
struct SourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "source", abstract: "Manage sources on a server.",
        subcommands: [Add.self, List.self, Show.self, Pause.self, Resume.self, Reset.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a source.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The source's name.") var name: String
        @Option(help: "Source kind (http-json, synthetic, …).") var kind: String
        @Option(help: "The kind's config: JSON, or @file to read it from a file.") var config: String
        @Option(help: "Sync on a schedule, every this many seconds.") var every: Double?
        @Option(help: "Priority, -1000…1000.") var priority: Int?
        @Option(help: "A credential's name or id (docs/credentials.md).") var credential: String?

        func run() async throws {
            let text: String
            if config.hasPrefix("@") {
                guard let contents = try? String(contentsOfFile: String(config.dropFirst()), encoding: .utf8) else {
                    throw CommandFailure("cannot read \(config.dropFirst())", exitCode: 3)
                }
                text = contents
            } else {
                text = config
            }
            guard let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), parsed.objectValue != nil else {
                throw CommandFailure("--config must be a JSON object (or @file holding one)", exitCode: 3)
            }
            var body: JSONObject = ["name": .string(name), "kind": .string(kind), "config": parsed]
            if let every { body["schedule"] = .object(["every_seconds": .number(every)]) }
            if let priority { body["priority"] = .number(Double(priority)) }
            if let credential { body["credential"] = .string(credential) }
            let source = try await connection.connection.call(.POST, "/v1/sources", body: .object(body))
            if connection.json { Output.json(source) } else { print("created source \(Output.text(source["name"])) (\(Output.text(source["id"])))") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sources.")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let items = try await connection.allItems("/v1/sources")
            if connection.json { return Output.json(.array(items)) }
            Output.table(["NAME", "KIND", "HEALTH", "LAST SYNC", "STATUS", "ID"], items.map { s in
                [Output.text(s["name"]), Output.text(s["kind"]), Output.text(s["health"]), Output.text(s["last_sync"]?["id"]),
                 Output.text(s["last_sync"]?["status"]), Output.text(s["id"])]
            })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one source (secrets appear as ***).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws { Output.json(try await connection.connection.call(.GET, "/v1/sources/\(PathSegment.encode(name))")) }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop scheduling and claiming a source's syncs (a running one finishes).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws { try await connection.postAction("/v1/sources", name, "pause", done: "paused source") }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Schedule and claim a paused source's syncs again.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws { try await connection.postAction("/v1/sources", name, "resume", done: "resumed source") }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Clear a source's saved cursor, and with --records mark its live records deleted (kept in its resets).")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @Flag(help: "Also mark every live record deleted.") var records = false
        @Flag(help: "Keep the saved cursor (with --records: delete records only).") var keepState = false
        func run() async throws {
            let body: JSONValue = .object(["state": .bool(!keepState), "records": .bool(records)])
            let answer = try await connection.connection.call(.POST, "/v1/sources/\(PathSegment.encode(name))/reset", body: body)
            if connection.json { Output.json(answer); return }
            let deleted = answer["records_deleted"]?.intValue ?? 0
            print("reset source \(name): " + [!keepState ? "cursor cleared" : nil, records ? "\(deleted) records deleted" : nil]
                .compactMap { $0 }.joined(separator: ", "))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a source with its records and history.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws {
            _ = try await connection.connection.call(.DELETE, "/v1/sources/\(PathSegment.encode(name))")
            if !connection.json { print("removed source \(name)") }
        }
    }
}

enum PathSegment {
    static func encode(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }
}
