import Foundation
import Testing
import SyncCore
import TestSupport

/// The streaming export of a source's records (`Accept: application/x-ndjson`) against the
/// real binary: a source of 2,000,000 records streams whole, in key order, while the node's
/// peak memory stays bounded.
@Suite("Streaming export", .serialized)
struct ExportProcessTests {
    /// The node's peak resident memory so far (`VmHWM`), in bytes.
    static func peakRSS(_ pid: pid_t) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kB = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw TimedOut(description: "no VmHWM in /proc/\(pid)/status") }
        return kB * 1024
    }

    /// 2,000,000 records (~330 bytes each as JSON lines, 1,000 of them marked deleted) written
    /// straight into the node's SQLite file: the export holds every live one once, in key
    /// order, ending with a newline; with `include_deleted` all of them; and the node's peak
    /// RSS stays under 150 MB (the stream is ~650 MB).
    @Test func twoMillionRecordsStreamInBoundedMemory() async throws {
        let dir = try TemporaryDirectory("e2e-export")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:exp.sqlite", "--workers", "0"], directory: dir)
        #expect(try await node.client.post("/v1/sources", #"{"name": "big", "kind": "synthetic", "config": {"records": 1}}"#).status == 201)
        try await sqlite3(dir.file("exp.sqlite"), """
            PRAGMA busy_timeout = 10000;
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999999)
            INSERT INTO records (source_seq, key, data, hash, created_at, updated_at, sync_seq, seen_sync_seq, change_seq)
            SELECT (SELECT seq FROM sources WHERE name = 'big'), printf('%07d', i),
                   CAST(json_object('id', i, 'name', 'record-' || i, 'value', i * 7, 'group', 'g' || (i % 10),
                                    'pad', substr(hex(zeroblob(100)), 1, 150)) AS BLOB),
                   i, 1796514039.5, 1796514039.5, 0, 0, i + 1
            FROM n;
            UPDATE records SET deleted_at = 1796514040.5 WHERE key < '0001000';
            INSERT INTO record_feeds (source_seq, head) VALUES ((SELECT seq FROM sources WHERE name = 'big'), 2000000);
            """)
        let reader = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tools/read_ndjson.py").path
        let before = try Self.peakRSS(node.process.pid)
        let live = try await runCommand("/usr/bin/env", ["python3", reader, "\(node.baseURL)/v1/sources/big/records"])
        #expect(live.status == 0 && live.output.trimmingCharacters(in: .whitespacesAndNewlines) == "1999000 0001000 1999999", "\(live.output)")
        let all = try await runCommand("/usr/bin/env", ["python3", reader, "\(node.baseURL)/v1/sources/big/records?include_deleted=true"])
        #expect(all.status == 0 && all.output.trimmingCharacters(in: .whitespacesAndNewlines) == "2000000 0000000 1999999", "\(all.output)")
        let peak = try Self.peakRSS(node.process.pid)
        #expect(peak < 150 << 20, "peak RSS \(peak >> 20) MB (\(before >> 20) MB before the exports)")
        #expect(try await node.terminate() == 0)
    }
}
