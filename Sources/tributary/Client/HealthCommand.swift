import ArgumentParser
import Foundation
import SyncCore

/// `tributary health`: the server's `/v1/health`: the database, the nodes, the queue, stuck syncs.
/// Exits 0 when `ok` or `degraded` (the table says which), 4 when the server reports `unhealthy`.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "health", abstract: "Show the health of the server and its cluster.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let report = try await connection.connection.call(.GET, "/v1/health")
        if connection.json { return Output.json(report) }
        print("status: \(report["status"]?.stringValue ?? "?")")
        var rows: [[String]] = []
        for check in report["checks"]?.arrayValue ?? [] {
            let name = check["name"]?.stringValue ?? "?"
            let status = check["status"]?.stringValue ?? "?"
            let detail: String = switch name {
            case "database": "latency \(Self.number(check["latency_ms"])) ms"
            case "workers": "\(Self.number(check["live_workers"])) live workers, \(Self.number(check["stale_nodes"])) stale nodes"
            case "queue": "\(Self.number(check["depth"])) queued, \(Self.number(check["running"])) running, oldest \(Self.number(check["oldest_queued_seconds"])) s"
            case "stuck_syncs": "\(Self.number(check["count"])) running with an expired lease"
            default: ""
            }
            rows.append([name, status, detail])
        }
        Output.table(["CHECK", "STATUS", "DETAIL"], rows)
        let nodes = report["checks"]?.arrayValue?.first { $0["name"] == .string("workers") }?["nodes"]?.arrayValue ?? []
        if !nodes.isEmpty {
            print("")
            Output.table(["NODE", "ROLE", "WORKERS", "STATUS", "HEARTBEAT"], nodes.map { node in
                [node["id"]?.stringValue ?? "", node["role"]?.stringValue ?? "", Self.number(node["workers"]),
                 node["status"]?.stringValue ?? "", node["heartbeat_at"]?.stringValue ?? ""]
            })
        }
    }

    static func number(_ value: JSONValue?) -> String {
        guard case .number(let n)? = value else { return "-" }
        return n == n.rounded() && abs(n) < 9e15 ? String(Int(n)) : String(n)
    }
}

/// `tributary node drain|resume ID`: a node of the cluster stops (or resumes) claiming syncs.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Drain or resume a node of the cluster.", subcommands: [Drain.self, Resume.self])

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a node claiming syncs (its running syncs finish).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The node id (its --node-id; `tributary health` lists them).") var id: String
        func run() async throws { try await connection.postAction("/v1/nodes", id, "drain", done: "draining node") }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Have a drained node claim syncs again.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        func run() async throws { try await connection.postAction("/v1/nodes", id, "resume", done: "resumed node") }
    }
}
