import ArgumentParser
import Foundation
import SyncCore

/// `tributary stats`: `GET /v1/stats` as a short report.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show sync statistics for a window of time.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "1h, 24h, 7d or 30d.") var window = "24h"

    func run() async throws {
        let stats = try await connection.connection.call(.GET, "/v1/stats?window=\(window.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")")
        if connection.json { return Output.json(stats) }
        let n = HealthCommand.number
        let syncs = stats["syncs"], records = stats["records"], duration = stats["duration_seconds"]
        let rate = stats["success_rate"]?.doubleValue.map { String(format: "%.1f %%", $0 * 100) } ?? "-"
        print("window \(Output.text(stats["window"])): \(n(syncs?["completed"])) completed, \(n(syncs?["failed"])) failed, "
              + "\(n(syncs?["cancelled"])) cancelled; success rate \(rate)")
        print("now: \(n(syncs?["queued"])) queued (oldest \(n(stats["queue"]?["oldest_queued_seconds"])) s), "
              + "\(n(syncs?["running"])) running, \(n(syncs?["retrying"])) retrying")
        print("duration: p50 \(n(duration?["p50"])) s, p95 \(n(duration?["p95"])) s, max \(n(duration?["max"])) s; "
              + "records/s p50 \(n(stats["records_per_second"]?["p50"]))")
        print("records: \(n(records?["read"])) read, \(n(records?["created"])) created, \(n(records?["updated"])) updated, "
              + "\(n(records?["deleted"])) deleted, \(n(records?["failed"])) failed")
        let sources = stats["by_source"]?.arrayValue ?? []
        if !sources.isEmpty {
            print("")
            Output.table(["SOURCE", "COMPLETED", "FAILED", "CANCELLED", "LAST SUCCESS"], sources.map { s in
                [Output.text(s["name"]), n(s["completed"]), n(s["failed"]), n(s["cancelled"]), Output.text(s["last_success_at"])]
            })
        }
    }
}

/// `tributary prune`: `POST /v1/maintenance/prune`.
struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Delete finished syncs older than a given age (records stay), keeping the newest of each source.")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .customLong("older-than"), help: "Seconds since a sync finished (default: the server's retention, 30 days).")
    var olderThan: Double?
    @Option(name: .customLong("keep-last"), help: "Finished syncs kept per source whatever their age (default: the server's, 20).")
    var keepLast: Int?

    func validate() throws {
        if let olderThan, !(olderThan.isFinite && olderThan >= 0) { throw ValidationError("--older-than must be a number of seconds, 0 or more") }
        if let keepLast, keepLast < 0 { throw ValidationError("--keep-last must be 0 or more") }
    }

    func run() async throws {
        var body: JSONObject = [:]
        if let olderThan { body["older_than_seconds"] = .number(olderThan) }
        if let keepLast { body["keep_last_per_source"] = .number(Double(keepLast)) }
        let result = try await connection.connection.call(.POST, "/v1/maintenance/prune", body: .object(body))
        if connection.json { return Output.json(result) }
        print("deleted \(HealthCommand.number(result["deleted_syncs"])) syncs")
    }
}
