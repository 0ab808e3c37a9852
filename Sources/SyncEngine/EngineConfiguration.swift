import Foundation
import SyncStore

/// How a node's engine runs.
public struct EngineConfiguration: Sendable {
    /// How many syncs this node runs at once.
    public var workers: Int
    /// This node's name: the lease owner of the syncs it runs.
    public var nodeID: String
    /// How long a lease lasts without a heartbeat.
    public var leaseSeconds: Double
    /// How often an idle worker looks for runnable syncs when no wake-up comes.
    public var pollInterval: Duration
    /// How often a running sync checks the database for a cancel from another process.
    public var cancelCheckInterval: Duration
    /// Which finished syncs the pruner deletes (and `POST /v1/maintenance/prune` by default).
    public var retention: RetentionPolicy
    /// How often this node prunes; `nil`: never on its own.
    public var pruneInterval: Duration?
    /// How webhooks are delivered (on a node given a client for them).
    public var webhooks: WebhookPolicy

    public init(
        workers: Int = 4, nodeID: String = EngineConfiguration.defaultNodeID(), leaseSeconds: Double = 30,
        pollInterval: Duration = .seconds(1), cancelCheckInterval: Duration = .milliseconds(500),
        retention: RetentionPolicy = .default, pruneInterval: Duration? = .seconds(3600), webhooks: WebhookPolicy = .default
    ) {
        self.webhooks = webhooks
        self.workers = workers
        self.nodeID = nodeID
        self.leaseSeconds = leaseSeconds
        self.pollInterval = pollInterval
        self.cancelCheckInterval = cancelCheckInterval
        self.retention = retention
        self.pruneInterval = pruneInterval
    }

    /// Host name and process id.
    public static func defaultNodeID() -> String {
        // The host name in the node-id alphabet (a host name nearly always is already).
        let host = String(ProcessInfo.processInfo.hostName.unicodeScalars.map { isNodeIDCharacter($0) ? Character($0) : "-" }.prefix(48))
        return "\(host.isEmpty ? "node" : host)-\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// A node id: 1 to 64 of `A-Z a-z 0-9 . _ -`, so it needs no encoding in a URL path
    /// (`/v1/nodes/{id}/drain`), a log line or a metric label.
    public static func isValidNodeID(_ id: String) -> Bool {
        (1...64).contains(id.unicodeScalars.count) && id.unicodeScalars.allSatisfy(isNodeIDCharacter) && id != "." && id != ".."
    }

    static func isNodeIDCharacter(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "A"..."Z", "a"..."z", "0"..."9", ".", "_", "-": true
        default: false
        }
    }

    /// The heartbeat interval: a third of the lease (docs/api.md).
    public var heartbeatInterval: Duration { .milliseconds(Int(leaseSeconds * 1000 / 3)) }
}
