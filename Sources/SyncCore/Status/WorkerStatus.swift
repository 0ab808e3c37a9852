/// What a node's workers say about themselves: enough for `/readyz`, nothing to drive them.
public protocol WorkerStatus: Sendable {
    /// True until graceful shutdown begins (and the node has workers).
    var isAcceptingWork: Bool { get }
    /// How many workers the node was configured with.
    var configuredWorkers: Int { get }
    /// How many syncs the node runs right now.
    var runningCount: Int { get }
}
