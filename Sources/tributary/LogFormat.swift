import ArgumentParser
import Foundation
import Logging
import SyncCore

/// `--log-format`: `text` (swift-log's standard lines) or `json` (one object per line).
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json

    /// Bootstraps swift-log for the process, at `LOG_LEVEL` (default `info`).
    func bootstrap(level: Logger.Level) {
        switch self {
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return EscapingLogHandler(inner: handler)
            }
        case .json:
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, logLevel: level) }
        }
    }
}

/// One JSON object per line on standard error: `timestamp` (RFC 3339), `level`, `logger`,
/// `message`, then the metadata (`request_id`, `sync_id`, `source`, `attempt`, …) as
/// top-level string members. Nothing is added that the text format would not show:
/// secrets stay out because no log line is ever given one.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
             source: String, file: String, function: String, line: UInt) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let explicit { all.merge(explicit) { _, new in new } }
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(contentsOf: #"{"timestamp":"#.utf8)
        JSONWriter.writeString(Timestamp.format(Date()), into: &out)
        out.append(contentsOf: #","level":"#.utf8)
        JSONWriter.writeString(level.rawValue, into: &out)
        out.append(contentsOf: #","logger":"#.utf8)
        JSONWriter.writeString(label, into: &out)
        out.append(contentsOf: #","message":"#.utf8)
        JSONWriter.writeString(message.description, into: &out)
        for (key, value) in all.sorted(by: { $0.key < $1.key }) where !["timestamp", "level", "logger", "message"].contains(key) {
            out.append(UInt8(ascii: ","))
            JSONWriter.writeString(key, into: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.writeString(value.description, into: &out)
        }
        out.append(contentsOf: "}\n".utf8)
        // One write(2) per line, unbuffered: lines from many threads never interleave.
        out.withUnsafeBufferPointer { _ = write(2, $0.baseAddress, $0.count) }
    }
}

/// swift-log's text lines with what came from outside kept on its line: control characters,
/// line separators and direction overrides in the message and the metadata as `\u{…}`
/// escapes, so an upstream's text cannot forge a log line (docs/operations.md).
struct EscapingLogHandler<Inner: LogHandler>: LogHandler {
    var inner: Inner

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }
    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }
    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?,
             source: String, file: String, function: String, line: UInt) {
        let safe = metadata?.mapValues { Self.escape($0) }
        inner.log(level: level, message: "\(LogText.escape(message.description))", metadata: safe,
                  source: source, file: file, function: function, line: line)
    }

    static func escape(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let s): .string(LogText.escape(s))
        case .stringConvertible(let c): .string(LogText.escape(c.description))
        case .array(let a): .array(a.map(escape))
        case .dictionary(let d): .dictionary(d.mapValues(escape))
        }
    }
}
