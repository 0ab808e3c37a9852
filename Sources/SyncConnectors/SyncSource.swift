import Foundation
import SyncCore

/// Reads one upstream page by page.
///
/// A source is created for one attempt of one sync and reads pages from a
/// checkpoint: `readPage` gets the checkpoint of the last committed page (or
/// `nil` at the start) and returns the page's records with the checkpoint of
/// the page after it. The engine commits each page's records together with
/// the returned checkpoint in one transaction, so a source never needs to
/// remember anything itself: after a crash, the engine calls it again with the
/// last committed checkpoint.
///
/// Implementations must honour task cancellation promptly (a cancelled sync
/// cancels the task that awaits `readPage`), and throw ``SyncError`` for
/// failures so the engine can decide between retrying and failing.
///
/// To add a kind, implement ``SyncSourceKind`` and register it in a
/// ``SourceKindRegistry`` passed to the engine and the server.
public protocol SyncSource: Sendable {
    /// Reads the page that starts at `request.checkpoint`.
    func readPage(_ request: PageRequest) async throws -> SourcePage
}

/// What the engine asks a source for.
public struct PageRequest: Sendable {
    /// Where to start; `nil` for the first page of the sync.
    public var checkpoint: JSONValue?
    /// 1-based number of this page among the pages fetched in the current attempt.
    public var pageInAttempt: Int
    /// 1-based number of this page in the whole sync.
    public var pageNumber: Int
    public init(checkpoint: JSONValue?, pageInAttempt: Int, pageNumber: Int) {
        self.checkpoint = checkpoint
        self.pageInAttempt = pageInAttempt
        self.pageNumber = pageNumber
    }
}

/// One page read from a source.
public struct SourcePage: Sendable {
    public var records: [SourceRecord]
    public var recordErrors: [RecordError]
    public var bytesRead: Int
    /// Where the next page starts, or `nil` when this was the last page.
    public var next: JSONValue?
    /// Keys to merge into the source's saved state with this page (e.g. the incremental cursor).
    public var sourceState: JSONObject?

    public init(records: [SourceRecord], recordErrors: [RecordError] = [], bytesRead: Int, next: JSONValue?, sourceState: JSONObject? = nil) {
        self.records = records
        self.recordErrors = recordErrors
        self.bytesRead = bytesRead
        self.next = next
        self.sourceState = sourceState
    }
}

/// Everything a kind needs to build a source for one attempt.
public struct SourceContext: Sendable {
    public var source: Source
    public var mode: SyncMode
    public var syncID: String
    /// The request budget of the source's key (shared by the cluster), if the engine gives one.
    public var gate: (any RequestGate)?
    /// The authorization of the source's credential, if it has one (docs/credentials.md).
    public var credential: (any CredentialSupplier)?
    /// Other sources' live records, for a child stream partitioned by a parent's records.
    public var parents: (any ParentRecords)?
    public init(source: Source, mode: SyncMode, syncID: String, gate: (any RequestGate)? = nil,
                credential: (any CredentialSupplier)? = nil, parents: (any ParentRecords)? = nil) {
        self.parents = parents
        self.credential = credential
        self.source = source
        self.mode = mode
        self.syncID = syncID
        self.gate = gate
    }
}

/// The live records of a source, read by a child stream that runs once per parent record.
public protocol ParentRecords: Sendable {
    /// The id of the source named or numbered `source`; `nil` if there is none.
    func sourceID(of source: String) async throws -> String?
    /// Up to `limit` live records of source `sourceID` with keys after `after`, in key order.
    func liveRecords(sourceID: String, after: String?, limit: Int) async throws -> [(key: String, data: [UInt8])]
}

/// A kind of source (`http-json`, `synthetic`, or your own).
public protocol SyncSourceKind: Sendable {
    /// The `kind` string of the API.
    var name: String { get }
    /// Config problems, as field errors with paths under `config.`; empty when valid.
    func validate(config: JSONObject) -> [FieldError]
    /// A source for one attempt.
    func makeSource(_ context: SourceContext) throws -> any SyncSource
    /// Throws an `egress_blocked` ``SyncError`` when the config points somewhere the node's
    /// egress policy forbids; checked when a source is created or changed.
    func checkEgress(config: JSONObject) async throws
    /// The keys of the source's saved state that mean nothing under `new` any more (a cursor
    /// of another field): a config change clears them, each with its per-partition keys
    /// (`<key>@<partition>`).
    func stateKeysInvalidated(from old: JSONObject, to new: JSONObject) -> [String]
}

extension SyncSourceKind {
    public func stateKeysInvalidated(from old: JSONObject, to new: JSONObject) -> [String] { [] }
    public func checkEgress(config: JSONObject) async throws {}
}

/// The kinds a server knows, by name.
public struct SourceKindRegistry: Sendable {
    private var kinds: [String: any SyncSourceKind] = [:]

    public init(_ kinds: [any SyncSourceKind] = []) {
        for kind in kinds { register(kind) }
    }

    /// The built-in kinds without network access (`synthetic`).
    public static var builtIn: SourceKindRegistry { SourceKindRegistry([SyntheticSourceKind()]) }

    /// Every built-in kind: `synthetic` and `http-json` over `client`.
    public static func standard(client: UpstreamClient) -> SourceKindRegistry {
        SourceKindRegistry([SyntheticSourceKind(), HTTPJSONSourceKind(client: client)])
    }

    public mutating func register(_ kind: any SyncSourceKind) { kinds[kind.name] = kind }
    public func kind(named name: String) -> (any SyncSourceKind)? { kinds[name] }
    public var names: [String] { kinds.keys.sorted() }
}
