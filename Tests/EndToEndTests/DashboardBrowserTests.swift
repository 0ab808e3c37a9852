import Foundation
import Testing
import SyncCore
import TestSupport

/// The dashboard as a person uses it: the real binary serving, headless Chromium reading
/// (WebDriver), every page screenshotted at a desktop and a phone width. Screenshots are
/// written under `.build/test-artifacts/dashboard` (or `TRIBUTARY_ARTIFACTS`).
@Suite("Dashboard in a real browser", .serialized)
struct DashboardBrowserTests {
    static let artifacts = ProcessInfo.processInfo.environment["TRIBUTARY_ARTIFACTS"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/test-artifacts/dashboard").path

    func waitFor(_ browser: Browser, _ what: String, timeout: Duration = .seconds(20), _ script: String) async throws -> JSONValue {
        do {
            return try await eventually(timeout: timeout, every: .milliseconds(100)) { () -> JSONValue? in
                let value = try await browser.run(script)
                return value == .null || value == .bool(false) ? nil : value
            }
        } catch {
            throw TimedOut(description: "\(what): \(error)")
        }
    }

    @Test func progressGrowsWithoutAReloadAndCancelOnTheSyncPageCancels() async throws {
        let dir = try TemporaryDirectory("e2e-dashboard")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:d.sqlite", "--workers", "2"], directory: dir)
        try await withBrowser(log: dir.file("chromedriver.log")) { browser in
            // A first quick run gives the bar its length (the last run's record count); the second is slow.
            #expect(try await node.client.post("/v1/sources", #"{"name": "slow", "kind": "synthetic", "config": {"records": 60, "page_size": 2}}"#).status == 201)
            let first = try #require(try await node.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
            _ = try await eventually { try await sync(node.client, first)["status"] == .string("completed") ? true : nil }
            _ = try await node.client.request(.PATCH, "/v1/sources/slow", json: #"{"config": {"records": 60, "page_size": 2, "delay_ms_per_page": 300}}"#)

            try await browser.open(node.baseURL + "/")
            try await browser.run("window.__sameDocument = true")
            let id = try #require(try await node.client.post("/v1/sources/slow/syncs").json["id"]?.stringValue)
            // The running sync appears (its status event) and its bar fills as pages commit.
            let bar = "document.querySelector('progress[data-sync=\"\(id)\"]')"
            _ = try await waitFor(browser, "the running sync's progress bar", "return \(bar) !== null")
            var seen: [Int] = []
            let deadline = ContinuousClock.now + .seconds(20)
            while seen.count < 3 && ContinuousClock.now < deadline {
                if let v = try await browser.run("return \(bar) ? \(bar).value : null").intValue, v != seen.last { seen.append(v) }
                try await Task.sleep(for: .milliseconds(150))
            }
            #expect(seen.count >= 3, "the bar did not move: \(seen)")
            #expect(seen == seen.sorted() && seen.last! > seen.first!, "\(seen)")
            #expect(try await browser.run("return \(bar).max") == .number(60))
            #expect(try await browser.run("return window.__sameDocument === true") == .bool(true), "the page reloaded")
            try await browser.screenshot(to: Self.artifacts + "/live-progress-1280.png")

            // Cancel from the sync's page, as a click.
            try await browser.open(node.baseURL + "/syncs/\(id)")
            try await browser.click("button[data-url='/v1/syncs/\(id)/cancel']")
            _ = try await eventually(timeout: .seconds(20)) { try await sync(node.client, id)["status"] == .string("cancelled") ? true : nil }
            _ = try await waitFor(browser, "the page shows the sync cancelled", "return document.querySelector('[data-status=\"\(id)\"]')?.textContent === 'cancelled'")
        }
        #expect(try await node.terminate() == 0)
    }

    @Test func withTokensTheViewerSeesNoButtonsAndTheAdminsActionsWork() async throws {
        let dir = try TemporaryDirectory("e2e-dashboard-auth")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:a.sqlite", "--token", "viewer:v-secret", "--token", "admin:a-secret"], directory: dir)
        let admin = APIClient(baseURL: node.baseURL, token: "a-secret")
        #expect(try await admin.post("/v1/sources", #"{"name": "crm", "kind": "synthetic", "config": {"records": 3}}"#).status == 201)
        try await withBrowser(log: dir.file("chromedriver.log")) { browser in

            try await browser.open(node.baseURL + "/sources")
            _ = try await waitFor(browser, "the sign-in form", "return !document.getElementById('sign-in').hidden")
            #expect(try await browser.run("return document.body.innerText.includes('crm')") == .bool(false))
            try await browser.screenshot(to: Self.artifacts + "/sign-in-1280.png")
            try await browser.type("#token", "v-secret")
            try await browser.click("#sign-in button[type=submit]")
            _ = try await waitFor(browser, "the viewer's source list", "return document.querySelector('main a[href^=\"/sources/\"]') !== null")
            #expect(try await browser.run("return document.querySelectorAll('button[data-url], button[data-bulk]').length") == .number(0))
            #expect(try await browser.run("return sessionStorage.getItem('tributary.token')") == .string("v-secret"))
            #expect(try await browser.run("return document.cookie") == .string(""))

            // Signed out, then in as the admin: the buttons are there and they work.
            try await browser.click("#sign-out")
            _ = try await waitFor(browser, "the sign-in form again", "return !document.getElementById('sign-in').hidden")
            try await browser.type("#token", "a-secret")
            try await browser.click("#sign-in button[type=submit]")
            _ = try await waitFor(browser, "the admin's buttons", "return document.querySelector('button[data-url$=\"/pause\"]') !== null")
            try await browser.click("button[data-url$='/pause']")
            _ = try await eventually(timeout: .seconds(10)) { try await admin.get("/v1/sources/crm").json["paused"] == .bool(true) ? true : nil }
            _ = try await waitFor(browser, "the page offers Resume", "return document.querySelector('button[data-url$=\"/resume\"]') !== null")
            // A wrong token is refused and forgotten.
            try await browser.run("sessionStorage.setItem('tributary.token', 'nope')")
            try await browser.open(node.baseURL + "/syncs")
            _ = try await waitFor(browser, "the refusal", "return document.getElementById('sign-in-error').textContent.length > 0")
            #expect(try await browser.run("return sessionStorage.getItem('tributary.token')") == .null)
        }
        #expect(try await node.terminate() == 0)
    }

    /// The credentials page shows a credential without its secret, and its form gives a new
    /// one: the next sync's requests carry it.
    @Test func theCredentialsPageTakesANewSecretAndNeverShowsOne() async throws {
        let dir = try TemporaryDirectory("e2e-dashboard-credentials")
        defer { dir.remove() }
        let upstream = FixtureUpstream(items: 2)
        try await upstream.start()
        defer { Task { await upstream.stop() } }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:c.sqlite", "--workers", "1"], directory: dir)
        let c = node.client
        #expect(try await c.post("/v1/credentials", #"{"name": "gh", "type": "bearer", "config": {"token": "old-secret-token"}}"#).status == 201)
        #expect(try await c.post("/v1/sources", #"""
            {"name": "s", "kind": "http-json", "credential": "gh", "config": {"url": "\#(upstream.baseURL)/none", "records_path": "/rows", "primary_key": "id"}}
            """#).status == 201)
        try await withBrowser(log: dir.file("chromedriver.log")) { browser in
            try await browser.open(node.baseURL + "/credentials")
            _ = try await waitFor(browser, "the credential's form", "return document.querySelector('form[data-patch] input[name=\"token\"]') !== null")
            let html = try await browser.run("return document.documentElement.outerHTML").stringValue ?? ""
            #expect(html.contains("gh") && !html.contains("old-secret-token"))
            try await browser.run("document.querySelector('form[data-patch] input[name=\"token\"]').value = 'new-secret-token'")
            try await browser.click("form[data-patch] button[type='submit']")
            _ = try await eventually(timeout: .seconds(10)) { () -> Bool? in
                try await browser.run("return document.querySelector('form[data-patch] input[name=\"token\"]')?.value === ''") == .bool(true) ? true : nil
            }
        }
        let started = try #require(try await c.post("/v1/sources/s/syncs").json["id"]?.stringValue)
        _ = try await eventually(timeout: .seconds(20)) { try await sync(c, started)["status"] == .string("completed") ? true : nil }
        #expect(upstream.requests(path: "/none").last?.headers["authorization"] == "Bearer new-secret-token")
        #expect(try await node.terminate() == 0)
    }

    /// The nodes page's Drain button drains the node (after a confirmation), and the syncs
    /// page's bulk buttons cancel the selected syncs and queue them again.
    @Test func theDrainAndBulkButtonsDoWhatTheySay() async throws {
        let dir = try TemporaryDirectory("e2e-dashboard-buttons")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:b.sqlite", "--workers", "0", "--node-id", "n-buttons"], directory: dir)
        let c = node.client
        var ids: [String] = []
        for name in ["a", "b", "c"] {
            #expect(try await c.post("/v1/sources", #"{"name": "\#(name)", "kind": "synthetic", "config": {"records": 3}}"#).status == 201)
            ids.append(try #require(try await c.post("/v1/sources/\(name)/syncs").json["id"]?.stringValue))
        }
        let syncIDs = ids
        try await withBrowser(log: dir.file("chromedriver.log")) { browser in
            let ids = syncIDs
            try await browser.open(node.baseURL + "/nodes")
            _ = try await waitFor(browser, "the Drain button", "return document.querySelector('button[data-url$=\"/drain\"]') !== null")
            try await browser.run("window.confirm = () => true")
            try await browser.click("button[data-url$='/drain']")
            _ = try await eventually(timeout: .seconds(10)) { () -> Bool? in
                let nodes = try await c.get("/v1/health").json["checks"]?.arrayValue?.first { $0["name"] == .string("workers") }?["nodes"]?.arrayValue ?? []
                return nodes.first { $0["id"] == .string("n-buttons") }?["draining"] == .bool(true) ? true : nil
            }

            try await browser.open(node.baseURL + "/syncs")
            _ = try await waitFor(browser, "the bulk buttons", "return document.querySelector('button[data-bulk=\"cancel\"]') !== null")
            // Two of the three selected: those two are cancelled, the third is left queued.
            for id in ids.prefix(2) { try await browser.run("document.querySelector('input[name=\"sync\"][value=\"\(id)\"]').checked = true") }
            try await browser.run("window.confirm = () => true")
            try await browser.click("button[data-bulk='cancel']")
            _ = try await eventually(timeout: .seconds(10)) { () -> Bool? in
                let statuses = try await ids.asyncMap { try await sync(c, $0)["status"]?.stringValue ?? "" }
                return statuses == ["cancelled", "cancelled", "queued"] ? true : nil
            }
            try await browser.open(node.baseURL + "/syncs")
            _ = try await waitFor(browser, "the bulk buttons again", "return document.querySelector('button[data-bulk=\"retry\"]') !== null")
            try await browser.run("document.querySelector('input[name=\"sync\"][value=\"\(ids[0])\"]').checked = true")
            try await browser.run("window.confirm = () => true")
            try await browser.click("button[data-bulk='retry']")
            _ = try await eventually(timeout: .seconds(10)) { try await sync(c, ids[0])["status"] == .string("queued") ? true : nil }
            #expect(try await sync(c, ids[1])["status"] == .string("cancelled"))
        }
        #expect(try await node.terminate() == 0)
    }

    @Test func withJavaScriptOffThePagesStillList() async throws {
        let dir = try TemporaryDirectory("e2e-dashboard-nojs")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:n.sqlite", "--workers", "1"], directory: dir)
        #expect(try await node.client.post("/v1/sources", #"{"name": "orders", "kind": "synthetic", "config": {"records": 3}}"#).status == 201)
        let id = try #require(try await node.client.post("/v1/sources/orders/syncs").json["id"]?.stringValue)
        _ = try await eventually { try await sync(node.client, id)["status"] == .string("completed") ? true : nil }
        try await withBrowser(javaScript: false, log: dir.file("chromedriver.log")) { browser in
            try await browser.open(node.baseURL + "/sources")
            let html = try await browser.source()
            #expect(html.contains(">orders</a>"))
            try await browser.open(node.baseURL + "/syncs?status=completed")
            #expect(try await browser.source().contains(id))
            try await browser.screenshot(to: Self.artifacts + "/no-javascript-sources-1280.png")
        }
        #expect(try await node.terminate() == 0)
    }

    /// Every page at 1280 px and at 390 px, light and dark: screenshots, no horizontal
    /// scrolling, nothing loaded from elsewhere, text contrast of at least 4.5:1 (3:1 for
    /// large text), a visible focus ring, and every control labelled.
    @Test func everyPageAtDesktopAndPhoneWidthsInLightAndDark() async throws {
        let dir = try TemporaryDirectory("e2e-dashboard-shots")
        defer { dir.remove() }
        let node = try await TributaryProcess(serve: ["--database", "sqlite:s.sqlite", "--workers", "2"], directory: dir)
        let c = node.client
        #expect(try await c.post("/v1/sources", #"{"name": "orders", "kind": "synthetic", "config": {"records": 120, "page_size": 20}, "schedule": {"every_seconds": 3600}}"#).status == 201)
        #expect(try await c.post("/v1/sources", #"{"name": "crm-contacts", "kind": "http-json", "retry": {"max_attempts": 1}, "config": {"url": "http://127.0.0.1:1/contacts", "primary_key": "id", "headers": {"Authorization": "Bearer hidden"}}}"#).status == 201)
        #expect(try await c.post("/v1/sources", #"{"name": "slow-ledger", "kind": "synthetic", "config": {"records": 400, "page_size": 2, "delay_ms_per_page": 500}}"#).status == 201)
        let done = try #require(try await c.post("/v1/sources/orders/syncs").json["id"]?.stringValue)
        let failed = try #require(try await c.post("/v1/sources/crm-contacts/syncs").json["id"]?.stringValue)
        _ = try await eventually { try await sync(c, done)["status"] == .string("completed") ? true : nil }
        _ = try await eventually { try await sync(c, failed)["status"] == .string("failed") ? true : nil }
        let running = try #require(try await c.post("/v1/sources/slow-ledger/syncs").json["id"]?.stringValue)
        let orders = try #require(try await c.get("/v1/sources/orders").json["id"]?.stringValue)
        let pages: [(String, String)] = [
            ("overview", "/"), ("sources", "/sources"), ("source", "/sources/\(orders)"), ("syncs", "/syncs"),
            ("sync-failed", "/syncs/\(failed)"), ("sync-running", "/syncs/\(running)"), ("nodes", "/nodes"),
        ]
        try await withBrowser(log: dir.file("chromedriver.log")) { browser in
            for (scheme, widths) in [("light", [(1280, 900, false), (390, 844, true)]), ("dark", [(1280, 900, false), (390, 844, true)])] {
                try await browser.colorScheme(scheme)
                for (width, height, mobile) in widths {
                    try await browser.emulate(width: width, height: height, mobile: mobile)
                    for (name, path) in pages {
                        try await browser.open(node.baseURL + path)
                        let where_ = "\(name) at \(width) px, \(scheme)"
                        let widths = try await browser.run("return {page: document.documentElement.scrollWidth, window: window.innerWidth}")
                        #expect((widths["page"]?.intValue ?? 0) <= (widths["window"]?.intValue ?? 0), "\(where_) scrolls sideways: \(widths)")
                        let foreign = try await browser.run("return performance.getEntriesByType('resource').map(e => e.name).filter(u => !u.startsWith(location.origin))")
                        #expect(foreign == .array([]), "\(where_) loaded \(foreign)")
                        let lowContrast = try await browser.run(Self.contrastScript)
                        #expect(lowContrast == .array([]), "\(where_): \(lowContrast)")
                        let unlabelled = try await browser.run(Self.labelScript)
                        #expect(unlabelled == .array([]), "\(where_): \(unlabelled)")
                        try await browser.screenshot(to: Self.artifacts + "/\(name)-\(width)\(scheme == "dark" ? "-dark" : "").png")
                    }
                }
            }
            // A keyboard user sees where focus is.
            try await browser.open(node.baseURL + "/sources")
            let ring = try await browser.run("const a = document.querySelector('main a'); a.focus(); const s = getComputedStyle(a); return [s.outlineStyle, s.outlineWidth]")
            #expect(ring != .array([.string("none"), .string("0px")]), "no focus ring: \(ring)")
        }
        #expect(try await node.terminate() == 0)
    }

    /// Text whose colour against its background is under 4.5:1 (3:1 when large), as WCAG
    /// computes it; each as "text: ratio".
    static let contrastScript = """
        const lum = (c) => { const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        const parse = (s) => { const m = s.match(/rgba?\\(([^)]+)\\)/); if (!m) return null; const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return { rgb: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 }; };
        const background = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0.5) return c.rgb; } return parse(getComputedStyle(document.documentElement).backgroundColor)?.rgb || [255, 255, 255]; };
        const bad = [];
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          const el = n.parentElement;
          if (!n.textContent.trim() || !el || el.closest('svg') || el.closest('[hidden]') || el.closest('.visually-hidden')) continue;
          const s = getComputedStyle(el);
          if (s.visibility === 'hidden' || s.display === 'none' || el.getClientRects().length === 0) continue;
          const fg = parse(s.color); if (!fg) continue;
          const bg = background(el);
          const [l1, l2] = [lum(fg.rgb), lum(bg)].sort((a, b) => b - a);
          const ratio = (l1 + 0.05) / (l2 + 0.05);
          const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
          const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
          if (ratio < need) bad.push(n.textContent.trim().slice(0, 30) + ': ' + ratio.toFixed(2));
        }
        return bad.slice(0, 10);
        """

    /// Form controls without an accessible label, as the browser computes it.
    static let labelScript = """
        return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, progress, button'))
          .filter((el) => el.getClientRects().length > 0 || el.tagName === 'INPUT')
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
          .map((el) => el.outerHTML.slice(0, 80));
        """
}
