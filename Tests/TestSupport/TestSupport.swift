import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SyncCore

/// A directory under the system temp dir, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ prefix: String = "tributary-test") throws {
        path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func file(_ name: String) -> String { path + "/" + name }
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Parses JSON bytes into a ``JSONValue``.
public func parseJSON(_ bytes: some Collection<UInt8>) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
}

/// Polls `condition` until it returns a value or `timeout` passes.
public func eventually<T: Sendable>(
    timeout: Duration = .seconds(30), every interval: Duration = .milliseconds(50),
    _ condition: @Sendable () async throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while true {
        if let value = try await condition() { return value }
        if ContinuousClock.now > deadline { throw TimedOut(description: "condition not met within \(timeout)") }
        try await Task.sleep(for: interval)
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A response as tests see it.
public struct HTTPResult: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public var json: JSONValue { (try? parseJSON(body)) ?? .null }
    public var contentType: String? { headers.first(name: "content-type") }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A small HTTP client over AsyncHTTPClient for talking to a real server on loopback.
public struct APIClient: Sendable {
    public var baseURL: String
    public var token: String?

    public init(baseURL: String, token: String? = nil) {
        self.baseURL = baseURL
        self.token = token
    }

    public func request(
        _ method: HTTPMethod, _ path: String, json: String? = nil, headers: [(String, String)] = [],
        timeout: TimeAmount = .seconds(30)
    ) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let body = try await response.body.collect(upTo: 64 << 20)
        return HTTPResult(status: Int(response.status.code), headers: response.headers, body: Array(body.readableBytesView))
    }

    public func get(_ path: String) async throws -> HTTPResult { try await request(.GET, path) }
    public func post(_ path: String, _ json: String? = nil, headers: [(String, String)] = []) async throws -> HTTPResult {
        try await request(.POST, path, json: json, headers: headers)
    }
}

/// Runs a command to its end off the cooperative thread pool (a blocking wait there stalls
/// every other test of the process) and returns its exit status and combined output.
public func runCommand(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await PostgresCluster.offThePool { try PostgresCluster.execute(executable, arguments) }
}

/// Runs SQL on an SQLite database file with the `sqlite3` command (another process, so it sees
/// what is committed on disk) and returns its output, trimmed; throws if sqlite3 reports an error.
@discardableResult
public func sqlite3(_ path: String, _ sql: String) async throws -> String {
    let (status, output) = try await runCommand("/usr/bin/env", ["sqlite3", "-bail", path, sql])
    let text = output.trimmingCharacters(in: .whitespacesAndNewlines)
    guard status == 0 else { throw TimedOut(description: "sqlite3 failed: \(text)") }
    return text
}

extension Array where Element: Sendable {
    /// `map` with an async transform, one element at a time, in order.
    public func asyncMap<T: Sendable>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}

/// The most intervals open at one instant, overlaps shorter than `tolerance` seconds not
/// counted: how many syncs ran at once, from their attempts' recorded times rather than from
/// samples that can miss a short overlap. (A claim's time is read just before its
/// transaction, which may wait for the commit that freed its slot: the tolerance covers that
/// wait, and a real excess overlap lasts a whole page or more.)
public func maximumOverlap(_ intervals: [(start: Double, end: Double)], tolerance: Double = 0.1) -> Int {
    var edges: [(at: Double, change: Int)] = []
    for interval in intervals where interval.end - tolerance > interval.start {
        edges.append((interval.start, 1))
        edges.append((interval.end - tolerance, -1))
    }
    // An end sorts before a start at the same instant.
    edges.sort { a, b in a.at != b.at ? a.at < b.at : a.change < b.change }
    var open = 0
    var most = 0
    for edge in edges {
        open += edge.change
        most = max(most, open)
    }
    return most
}
