import Foundation
import SyncCore

/// One server-sent event as a client parses it.
public struct ServerSentEvent: Sendable, Equatable {
    public var id: String?
    public var event: String
    public var data: JSONValue

    /// The events in a text/event-stream body (comments skipped; a partial last event ignored).
    public static func parse(_ text: String) -> [ServerSentEvent] {
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? text  // a raw HTTP response: skip the head
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
