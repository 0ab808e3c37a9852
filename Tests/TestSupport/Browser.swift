import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SyncCore

/// Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`):
/// pages loaded, scripts run in them, elements clicked, screenshots taken. One
/// `chromedriver` process per browser, on a free loopback port.
public final class Browser: @unchecked Sendable {
    // @unchecked: every property is set in init and only read afterwards.
    public let driver: ChildProcess
    public let session: String
    let base: String

    public static var chromedriver: String? {
        ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts a browser. `javaScript: false` turns scripts off for every page.
    public init(javaScript: Bool = true, width: Int = 1280, height: Int = 900, log: String? = nil) async throws {
        guard let path = Self.chromedriver else { throw TimedOut(description: "chromedriver not found: apt-get install chromium chromium-driver") }
        let port = try PostgresCluster.freePort()
        driver = try ChildProcess(path, ["--port=\(port)", "--allowed-ips=127.0.0.1"], output: log)
        base = "http://127.0.0.1:\(port)"
        let url = base
        try await eventually(timeout: .seconds(30)) { () -> Bool? in
            (try? await Self.call(url, .GET, "/status")) != nil ? true : nil
        }
        var prefs: [String: JSONValue] = [:]
        if !javaScript { prefs["profile.managed_default_content_settings.javascript"] = .number(2) }
        let capabilities: JSONValue = .object(["capabilities": .object(["alwaysMatch": .object([
            "browserName": .string("chrome"),
            "goog:chromeOptions": .object([
                "binary": .string(["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/chromium"),
                "args": .array(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                                "--disable-extensions", "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
                                "--window-size=\(width),\(height)"].map(JSONValue.string)),
                "prefs": .object(prefs),
            ]),
        ])])])
        do {
            let created = try await Self.call(url, .POST, "/session", capabilities)
            guard let id = created["sessionId"]?.stringValue else { throw TimedOut(description: "no WebDriver session: \(created)") }
            session = id
        } catch {
            driver.signal(SIGKILL)
            throw error
        }
    }

    /// Ends the session (WebDriver closes Chromium) and the driver: chromedriver does not
    /// end on SIGTERM, so it is killed once its browser is gone.
    public func close() async {
        _ = try? await Self.call(base, .DELETE, "/session/\(session)")
        driver.signal(SIGKILL)
        _ = try? await driver.wait(timeout: .seconds(10))
    }

    /// Loads `url` and waits for the document to be complete.
    public func open(_ url: String) async throws {
        _ = try await command(.POST, "url", .object(["url": .string(url)]))
    }

    /// Runs `script` (a function body: `return …`) in the page and returns its result.
    @discardableResult
    public func run(_ script: String, _ args: [JSONValue] = []) async throws -> JSONValue {
        try await command(.POST, "execute/sync", .object(["script": .string(script), "args": .array(args)]))
    }

    /// Clicks the first element `selector` matches, as a person would (WebDriver moves the
    /// pointer to it, so it must be visible).
    public func click(_ selector: String) async throws {
        _ = try await command(.POST, "element/\(try await element(selector))/click", .object([:]))
    }

    /// Types into the first element `selector` matches.
    public func type(_ selector: String, _ text: String) async throws {
        _ = try await command(.POST, "element/\(try await element(selector))/value", .object(["text": .string(text)]))
    }

    /// The WebDriver id of the first element `selector` matches.
    func element(_ selector: String) async throws -> String {
        let found = try await command(.POST, "element", .object(["using": .string("css selector"), "value": .string(selector)]))
        guard case .object(let o) = found, let id = o.values.first?.stringValue else { throw TimedOut(description: "no element \(selector)") }
        return id
    }

    /// Accepts a `confirm()` dialog if one is open.
    public func acceptDialog() async throws {
        _ = try await command(.POST, "alert/accept", .object([:]))
    }

    /// Lays the page out as a screen of this size (a phone: `mobile`), through the DevTools protocol.
    public func emulate(width: Int, height: Int, mobile: Bool) async throws {
        _ = try await devTools("Emulation.setDeviceMetricsOverride", [
            "width": .number(Double(width)), "height": .number(Double(height)), "deviceScaleFactor": .number(1), "mobile": .bool(mobile),
        ])
    }

    /// Renders `prefers-color-scheme` as dark or light.
    public func colorScheme(_ scheme: String) async throws {
        _ = try await devTools("Emulation.setEmulatedMedia", ["features": .array([.object(["name": .string("prefers-color-scheme"), "value": .string(scheme)])])])
    }

    /// A PNG of the whole page (beyond the viewport), written to `path`.
    public func screenshot(to path: String) async throws {
        let shot = try await devTools("Page.captureScreenshot", ["format": .string("png"), "captureBeyondViewport": .bool(true)])
        guard let base64 = shot["data"]?.stringValue, let data = Data(base64Encoded: base64) else { throw TimedOut(description: "no screenshot") }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }

    func devTools(_ method: String, _ params: [String: JSONValue]) async throws -> JSONValue {
        try await command(.POST, "goog/cdp/execute", .object(["cmd": .string(method), "params": .object(params)]))
    }

    func command(_ method: HTTPMethod, _ path: String, _ body: JSONValue? = nil) async throws -> JSONValue {
        try await Self.call(base, method, "/session/\(session)/\(path)", body)
    }

    static func call(_ base: String, _ method: HTTPMethod, _ path: String, _ body: JSONValue? = nil) async throws -> JSONValue {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: JSONWriterForTests.bytes(body)))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let json = (try? JSONDecoder().decode(JSONValue.self, from: Data(bytes.readableBytesView))) ?? .null
        let value = json["value"] ?? .null
        if response.status.code >= 400 {
            throw TimedOut(description: "WebDriver \(method) \(path): \(response.status.code) \(value["message"]?.stringValue ?? "\(value)")")
        }
        return value
    }
}

enum JSONWriterForTests {
    static func bytes(_ value: JSONValue) -> [UInt8] {
        (try? [UInt8](JSONEncoder().encode(value))) ?? []
    }
}

/// Runs `body` with a browser and closes it (chromedriver and Chromium end) whether or not `body` throws.
public func withBrowser<T: Sendable>(javaScript: Bool = true, log: String? = nil, _ body: (Browser) async throws -> T) async throws -> T {
    let browser = try await Browser(javaScript: javaScript, log: log)
    do {
        let result = try await body(browser)
        await browser.close()
        return result
    } catch {
        await browser.close()
        throw error
    }
}

extension Browser {
    /// The page's HTML as the browser holds it (works with scripts off).
    public func source() async throws -> String {
        try await command(.GET, "source").stringValue ?? ""
    }
}
