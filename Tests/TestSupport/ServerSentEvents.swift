import Foundation
import SyncCore

/// One server-sent event as a client parses it.
public struct ServerSentEvent: Sendable, Equatable {
    public var id: String?
    public var event: String
    public var data: JSONValue

    /// The events in a text/event-stream body (comments skipped; a partial last event ignored).
    public static func parse(_ text: String) -> [ServerSentEvent] {
        var body = text
        // A raw HTTP response: skip the head and undo chunked transfer coding.
        if text.hasPrefix("HTTP/"), let end = text.range(of: "\r\n\r\n") {
            body = String(text[end.upperBound...])
            if text[..<end.lowerBound].lowercased().contains("transfer-encoding: chunked") { body = dechunk(body) }
        }
        var events: [ServerSentEvent] = []
        for block in body.components(separatedBy: "\n\n").dropLast() {
            var id: String?, name = "message", data = ""
            for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix(":") { continue }
                if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data += String(line.dropFirst(6)) }
            }
            guard !data.isEmpty else { continue }
            events.append(ServerSentEvent(id: id, event: name, data: (try? parseJSON(Array(data.utf8))) ?? .null))
        }
        return events
    }
}

/// The data of the complete chunks of a chunked HTTP body (RFC 9112 §7.1).
func dechunk(_ text: String) -> String {
    var bytes = Array(text.utf8)[...]
    var out: [UInt8] = []
    while let lineEnd = bytes.firstRange(of: [13, 10]) {
        guard let size = Int(String(decoding: bytes[bytes.startIndex..<lineEnd.lowerBound], as: UTF8.self), radix: 16), size > 0,
              bytes.count >= lineEnd.upperBound - bytes.startIndex + size else { break }
        out += bytes[lineEnd.upperBound..<(lineEnd.upperBound + size)]
        bytes = bytes[(lineEnd.upperBound + size)...]
        if bytes.starts(with: [13, 10]) { bytes = bytes.dropFirst(2) }
    }
    return String(decoding: out, as: UTF8.self)
}
