import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
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
        return ServerConnection(baseURL: base, token: token ?? env["TRIBUTARY_TOKEN"])
    }
}

/// The command line's HTTP client. Exit statuses (docs/api.md, "Client commands"): a problem
/// answer exits 4 with its `detail` on stderr; an unreachable server exits 5.
struct ServerConnection {
    var baseURL: String
    var token: String?

    /// A refused connection fails at once (exit 5) instead of being retried until the deadline.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    func call(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
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
            throw CommandFailure("cannot reach the server at \(baseURL): \(error)", exitCode: 5)
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

/// Output helpers: JSON as the API sent it, or aligned tables.
enum Output {
    static func json(_ value: JSONValue) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self))
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
