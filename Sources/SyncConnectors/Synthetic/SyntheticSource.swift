import Foundation
import SyncCore

/// The `synthetic` kind: deterministic records for demos, tests and benchmarks.
///
/// Config: `{"records": 100000, "page_size": 1000, "fail_every_n_pages": 0, "delay_ms_per_page": 0}`.
/// Record `i` (0-based) has key `"i"` and the same bytes every time. With
/// `fail_every_n_pages: N`, the N-th, 2N-th, … page fetched within one attempt
/// fails with a retryable `upstream_unavailable`. `delay_ms_per_page` sleeps
/// before each page; the sleep is cancellable.
public struct SyntheticSourceKind: SyncSourceKind {
    public init() {}
    public var name: String { "synthetic" }

    public struct Config: Sendable, Equatable {
        public var records: Int
        public var pageSize: Int
        public var failEveryNPages: Int
        public var delayMsPerPage: Int
    }

    static let knownKeys: Set<String> = ["records", "page_size", "fail_every_n_pages", "delay_ms_per_page"]

    public func validate(config: JSONObject) -> [FieldError] {
        var errors: [FieldError] = []
        for key in config.keys where !Self.knownKeys.contains(key) {
            errors.append(FieldError("config.\(key)", "unknown field; expected one of \(Self.knownKeys.sorted().joined(separator: ", "))"))
        }
        func check(_ key: String, _ range: ClosedRange<Int>, required: Bool) {
            guard let value = config[key] else {
                if required { errors.append(FieldError("config.\(key)", "is required")) }
                return
            }
            guard let int = value.intValue else {
                errors.append(FieldError("config.\(key)", "must be an integer, got \(value.typeName)"))
                return
            }
            if !range.contains(int) { errors.append(FieldError("config.\(key)", "must be between \(range.lowerBound) and \(range.upperBound)")) }
        }
        check("records", 0...1_000_000_000, required: true)
        check("page_size", 1...100_000, required: false)
        check("fail_every_n_pages", 0...1_000_000, required: false)
        check("delay_ms_per_page", 0...600_000, required: false)
        return errors
    }

    public static func parse(_ config: JSONObject) -> Config {
        Config(
            records: config["records"]?.intValue ?? 0,
            pageSize: config["page_size"]?.intValue ?? 1000,
            failEveryNPages: config["fail_every_n_pages"]?.intValue ?? 0,
            delayMsPerPage: config["delay_ms_per_page"]?.intValue ?? 0
        )
    }

    public func makeSource(_ context: SourceContext) throws -> any SyncSource {
        let errors = validate(config: context.source.config)
        if let first = errors.first { throw SyncError(.configInvalid, "\(first.field) \(first.message)") }
        return SyntheticSource(config: Self.parse(context.source.config))
    }
}

/// Reads synthetic pages; the checkpoint is `{"offset": N}`, the index of the next record.
public struct SyntheticSource: SyncSource {
    public let config: SyntheticSourceKind.Config

    public init(config: SyntheticSourceKind.Config) { self.config = config }

    public func readPage(_ request: PageRequest) async throws -> SourcePage {
        if config.delayMsPerPage > 0 {
            try await Task.sleep(for: .milliseconds(config.delayMsPerPage))
        }
        try Task.checkCancellation()
        if config.failEveryNPages > 0, request.pageInAttempt % config.failEveryNPages == 0 {
            throw SyncError(.upstreamUnavailable, "synthetic failure on page \(request.pageInAttempt) of this attempt", retryable: true)
        }
        let offset = request.checkpoint?["offset"]?.intValue ?? 0
        let end = min(config.records, offset + config.pageSize)
        var records: [SourceRecord] = []
        records.reserveCapacity(max(0, end - offset))
        var bytes = 0
        for i in offset..<max(offset, end) {
            let data = Self.record(i)
            bytes += data.count
            records.append(SourceRecord(key: String(i), data: data))
        }
        let next: JSONValue? = end < config.records ? .object(["offset": .number(Double(end))]) : nil
        return SourcePage(records: records, bytesRead: bytes, next: next)
    }

    /// The bytes of record `i`: the same on every call, every machine.
    public static func record(_ i: Int) -> [UInt8] {
        let value = (i &* 7919) % 10007
        return Array(#"{"id":\#(i),"name":"record-\#(i)","value":\#(value),"group":"g\#(i % 16)"}"#.utf8)
    }
}
