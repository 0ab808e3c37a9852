import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SyncConnectors
import SyncCore

/// Options every client command shares: where the server is, the token, the output form.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server URL (env TRIBUTARY_URL; default http://127.0.0.1:8080).")
    var server: String?
    @Option(help: "Bearer token (env TRIBUTARY_TOKEN).")
    var token: String?
    @Flag(help: "Print the API's JSON instead of tables.")
    var json = false

    var connection: ServerConnection {
        let env = ProcessInfo.processInfo.environment
        var base = server ?? env["TRIBUTARY_URL"] ?? "http://127.0.0.1:8080"
        while base.hasSuffix("/") { base.removeLast() }
        // A token read from a file keeps its line end (`\r\n` from Windows): not part of it.
        let secret = (token ?? env["TRIBUTARY_TOKEN"]).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        return ServerConnection(baseURL: base, token: secret)
    }
}

/// The command line's HTTP client. Exit statuses (docs/api.md, "Client commands"): a problem
/// answer exits 4 with its `detail` on stderr; an unreachable server exits 5.
struct ServerConnection {
    var baseURL: String
    var token: String?

    /// The server URL as messages show it: a password, and a query value with a secret's name
    /// (`access_token=`, `token=`), is `***`, parsable or not.
    var shownURL: String { SecretRedaction.redactText(SecretRedaction.redactURL(baseURL)) }

    /// Checks what is sent before anything is: a token that no header can carry is a usage
    /// error (exit 3), named but never printed.
    func preflight() throws {
        guard HTTPURL.parse(baseURL) != nil else {
            throw CommandFailure("the server URL (--server or TRIBUTARY_URL) must be an absolute http or https URL with a port, if any, in 1...65535", exitCode: 3)
        }
        if let token, token.isEmpty || !token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            throw CommandFailure("the token (--token or TRIBUTARY_TOKEN) must be printable ASCII without spaces", exitCode: 3)
        }
    }

    /// The failure to reach the server, without the token or the URL's password in it.
    func unreachable(_ error: any Error) -> CommandFailure {
        var text = String(describing: error)
        for secret in [token, URLComponents(string: baseURL)?.password].compactMap({ $0 }) where !secret.isEmpty {
            text = text.replacingOccurrences(of: secret, with: "***")
        }
        text = SecretRedaction.redactText(text.replacingOccurrences(of: baseURL, with: shownURL))
        return CommandFailure("cannot reach the server at \(shownURL): \(text)", exitCode: 5)
    }

    /// A refused connection fails at once (exit 5) instead of being retried until the deadline.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.guardStatusLines()
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    func call(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        try preflight()
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "User-Agent", value: "tributary-cli/1")
        request.headers.add(name: "Accept", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        }
        let response: HTTPClientResponse
        var bytes: ByteBuffer
        do {
            response = try await Self.client.execute(request, timeout: .seconds(60))
            bytes = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw unreachable(error)
        }
        let data = bytes.readBytes(length: bytes.readableBytes) ?? []
        let value = data.isEmpty ? JSONValue.null : ((try? JSONDecoder().decode(JSONValue.self, from: Data(data))) ?? .null)
        guard (200..<300).contains(Int(response.status.code)) else {
            let detail = value["detail"]?.stringValue ?? "HTTP \(response.status.code)"
            let code = value["code"]?.stringValue.map { " (\($0))" } ?? ""
            throw CommandFailure(detail + code, exitCode: 4)
        }
        return value
    }
}

extension ServerConnection {
    /// One server-sent event: its id, name and JSON data.
    struct Event {
        var id: String?
        var name: String
        var data: JSONValue
    }

    /// Reads a text/event-stream until the server ends it, handing each event to `onEvent`
    /// (which returns false to stop). Throws like ``call(_:_:body:)`` for a problem answer or
    /// an unreachable server; returns normally when the stream ends.
    func stream(_ path: String, lastEventID: String?, onEvent: (Event) throws -> Bool) async throws {
        let response = try await open(path, accept: "text/event-stream", headers: lastEventID.map { ["Last-Event-ID": $0] } ?? [:])
        var pending: [UInt8] = []
        for try await chunk in response.body {
            pending += chunk.readableBytesView
            // Events end with a blank line.
            while let end = pending.firstRange(of: [10, 10]) {
                let block = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
                pending.removeSubrange(..<end.upperBound)
                var event = Event(id: nil, name: "message", data: .null)
                var data = ""
                for line in block.split(separator: "\n") {
                    if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
                    else if line.hasPrefix("event: ") { event.name = String(line.dropFirst(7)) }
                    else if line.hasPrefix("data: ") { data += line.dropFirst(6) }
                }
                guard !data.isEmpty else { continue }  // a keep-alive comment
                event.data = (try? JSONDecoder().decode(JSONValue.self, from: Data(data.utf8))) ?? .null
                if try !onEvent(event) { return }
            }
        }
    }
}

extension ServerConnection {
    /// A GET whose body is read as it comes (a stream): the response once its status is a
    /// 2xx; a problem answer throws like ``call(_:_:body:)`` (exit 4), an unreachable server exit 5.
    func open(_ path: String, accept: String, headers: [String: String] = [:]) async throws -> HTTPClientResponse {
        try preflight()
        var request = HTTPClientRequest(url: baseURL + path)
        request.headers.add(name: "User-Agent", value: "tributary-cli/1")
        request.headers.add(name: "Accept", value: accept)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response: HTTPClientResponse
        do {
            response = try await Self.client.execute(request, deadline: .distantFuture)
        } catch {
            throw unreachable(error)
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            let body = (try? await response.body.collect(upTo: 1 << 20)).map { Array($0.readableBytesView) } ?? []
            let value = (try? JSONDecoder().decode(JSONValue.self, from: Data(body))) ?? .null
            throw CommandFailure((value["detail"]?.stringValue ?? "HTTP \(response.status.code)") + (value["code"]?.stringValue.map { " (\($0))" } ?? ""),
                                 exitCode: 4)
        }
        return response
    }
}

/// Output helpers: JSON as the API sent it, or aligned tables.
enum Output {
    static func json(_ value: JSONValue) {
        print(String(decoding: JSONWriter.prettyBytes(value), as: UTF8.self))
    }

    static func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        print(line(header))
        for row in rows { print(line(row)) }
    }

    static func text(_ value: JSONValue?) -> String {
        guard let value else { return "-" }
        switch value {
        case .null: return "-"
        case .string(let s): return s
        default: return JSONValue.scalarText(value) ?? "\(value)"
        }
    }
}

extension ConnectionOptions {
    /// Every item of a paginated list route (`/v1/sources`, `/v1/credentials`), 1,000 a page.
    func allItems(_ path: String) async throws -> [JSONValue] {
        var items: [JSONValue] = []
        var cursor: String?
        repeat {
            let page = try await connection.call(.GET, path + "?limit=1000" + (cursor.map { "&cursor=\($0)" } ?? ""))
            items += page["items"]?.arrayValue ?? []
            cursor = page["next_cursor"]?.stringValue
        } while cursor != nil
        return items
    }

    /// `POST {collection}/{name}/{action}` (pause, resume, drain …), printing the answer
    /// (`--json`) or one line: "`done` `name`".
    func postAction(_ collection: String, _ name: String, _ action: String, done: String) async throws {
        let answer = try await connection.call(.POST, "\(collection)/\(PathSegment.encode(name))/\(action)")
        if json { Output.json(answer) } else { print("\(done) \(name)") }
    }
}
