import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import SyncServer
import TestSupport

/// The dashboard's pages as HTML: each parses, labels every control, loads nothing from
/// elsewhere, shows only what the API would (secrets `***`, names escaped), and answers
/// without data to a browser that has not signed in. The browser tests (EndToEndTests,
/// DashboardBrowserTests) drive the same pages in Chromium.
@Suite("Dashboard pages")
struct DashboardTests {
    static let fragment: HTTPFields = [HTTPField.Name("X-Tributary-Fragment")!: "1"]

    @Test(arguments: StoreBackend.allCases)
    func everyPageParsesLabelsItsControlsAndStaysOnItsOrigin(_ backend: StoreBackend) async throws {
        let node = try await TestNode(backend: backend, workers: 2)
        try await node.test { client in
            // Markup in a config value, and secrets in the config.
            let created = try await client.call(.post, "/v1/sources", #"""
                {"name": "crm", "kind": "open", "config": {"url": "http://127.0.0.1:1/x", "note": "<b>crm</b> & \"co\"",
                 "headers": {"Authorization": "Bearer s3cr3t-header"}, "api_key": "k3y-value"}}
                """#)
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let crm = try #require(created.json["id"]?.stringValue)
            let synthetic = try #require(try await client.createSource("numbers", records: 30, pageSize: 10)["id"]?.stringValue)
            let sync = try #require(try await client.call(.post, "/v1/sources/\(synthetic)/syncs", "{}").json["id"]?.stringValue)
            try await eventually {
                try await client.call(.get, "/v1/syncs/\(sync)").json["status"]?.stringValue == "completed" ? true : nil
            }
            let broken = try #require(try await client.createSource("broken", records: 10, pageSize: 5,
                extra: #", "retry": {"max_attempts": 1}"#)["id"]?.stringValue)
            _ = try await client.call(.patch, "/v1/sources/\(broken)", #"{"config": {"records": 10, "page_size": 5, "fail_every_n_pages": 1}}"#)
            let failing = try #require(try await client.call(.post, "/v1/sources/\(broken)/syncs", "{}").json["id"]?.stringValue)
            try await eventually {
                try await client.call(.get, "/v1/syncs/\(failing)").json["status"]?.stringValue == "failed" ? true : nil
            }
            let pages = ["/", "/?window=1h", "/?window=7d", "/sources", "/sources?q=num", "/sources?health=failing",
                         "/sources/\(crm)", "/sources/\(synthetic)", "/sources/\(synthetic)?after=00003",
                         "/syncs", "/syncs?status=failed&status=completed", "/syncs?source=numbers&since=2020-01-01T00:00",
                         "/syncs/\(sync)", "/syncs/\(failing)", "/nodes"]
            for path in pages {
                let response = try await client.call(.get, path)
                #expect(response.status == .ok, "\(path): \(response.status)")
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                let csp = try #require(response.headers[.contentSecurityPolicy], "\(path) has no CSP")
                #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("default-src 'none'"))
                let html = String(buffer: response.body)
                let check = PageCheck(html: html)
                #expect(check.problems.isEmpty, "\(path): \(check.problems)")
                for secret in ["s3cr3t-header", "k3y-value"] { #expect(!html.contains(secret), "\(path) shows \(secret)") }
                #expect(!html.contains("<b>crm</b>"), "\(path) did not escape a config value")
                #expect(check.elements(named: "script").allSatisfy { $0.attributes["src"] == "/assets/dashboard.js" })
            }
            // What the pages say, read as text.
            let source = String(buffer: try await client.call(.get, "/sources/\(crm)").body)
            #expect(source.contains("&lt;b&gt;crm&lt;/b&gt; &amp; \\&quot;co\\&quot;"), "the note, escaped")
            #expect(source.contains("***"))
            let overview = PageCheck(html: String(buffer: try await client.call(.get, "/").body))
            #expect(overview.text.contains("Recent failures") && overview.text.contains(failing))
            #expect(overview.elements(named: "svg").count == 1)
            #expect(overview.elements(named: "rect").count >= 2, "the chart draws the completed and the failed sync")
            // The health filter offers the API's values and each picks its sources.
            for (health, shown, hidden) in [("ok", "numbers", "broken"), ("failing", "broken", "numbers"), ("never_synced", "crm", "numbers")] {
                let page = PageCheck(html: String(buffer: try await client.call(.get, "/sources?health=\(health)").body))
                let names = page.elements(named: "a").compactMap(\.attributes["href"])
                #expect(page.elements(named: "option").contains { $0.attributes["value"] == health && $0.attributes["selected"] != nil })
                #expect(page.text.contains(shown) && !page.text.contains(hidden), "health=\(health): \(names)")
            }
            let healthy = PageCheck(html: String(buffer: try await client.call(.get, "/sources?health=healthy").body))
            #expect(healthy.text.contains("numbers") && !healthy.text.contains("broken"), "healthy is ok")
            let syncPage = PageCheck(html: String(buffer: try await client.call(.get, "/syncs/\(failing)").body))
            #expect(syncPage.text.contains("Attempt 1"))
            let records = PageCheck(html: String(buffer: try await client.call(.get, "/sources/\(synthetic)").body))
            #expect(records.elements(named: "details").count == 25, "a page of 25 records")
            #expect(records.elements(named: "a").contains { $0.attributes["href"]?.hasPrefix("/sources/\(synthetic)?after=") == true })
            // Both assets, as their types.
            let css = try await client.call(.get, "/assets/dashboard.css")
            #expect(css.status == .ok && css.headers[.contentType]?.hasPrefix("text/css") == true && css.body.readableBytes > 1000)
            let js = try await client.call(.get, "/assets/dashboard.js")
            #expect(js.status == .ok && js.headers[.contentType]?.hasPrefix("text/javascript") == true && js.body.readableBytes > 1000)
        }
    }

    /// Text from an upstream reaches the pages escaped by bytes and with its secrets masked:
    /// a quote followed by a combining mark (U+0301, U+200D, U+FE0F) went out raw through the
    /// template engine's per-`Character` escaping and opened an attribute, and a token an
    /// upstream echoed into its next link showed in clear in the sync page's checkpoint.
    @Test func upstreamTextIsEscapedByBytesAndRedactedOnEveryPage() async throws {
        let payloads = ["\"\u{301} onfocus=\"alert(1)\" autofocus=\"", "'\u{200D} onfocus='alert(2)' autofocus='", "\"\u{FE0F}><b id=\"bold\">b</b>",
                        "&\u{301}<i id=\"it\">i</i>"]
        @Sendable func json(_ text: String) -> String { String(decoding: (try? JSONEncoder().encode(text)) ?? Data(), as: UTF8.self) }
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { r in
                if r.path == "/leak" { return .json(#"{"rows":[{"id":1}],"next_url":"/s/leak2?access_token=Zq9leaked&page=2"}"#) }
                if r.path == "/leak2" { return FixtureUpstream.Scripted(status: 401, body: "{}") }
                let payload = payloads[Int(r.path.dropFirst("/bad".count)) ?? 0]
                return .json(#"{"rows":[{"id":1}],"next_url":\#(json(payload + " ?access_token=Zq9inmessage"))}"#)
            }
            var syncs: [String] = []
            for (index, name) in (payloads.indices.map { "bad\($0)" } + ["leak"]).enumerated() {
                _ = try await client.createHTTPSource(name, #"""
                    {"url": "\#(fixture.baseURL)/s/\#(index < payloads.count ? name : "leak")", "records_path": "/rows", "primary_key": "id",
                     "pagination": {"type": "next_url", "path": "/next_url"}}
                    """#, extra: #", "retry": {"max_attempts": 1}"#)
                let sync = try await client.runSync(name)
                #expect(sync["status"] == .string("failed"))
                #expect(!"\(sync)".contains("Zq9"), "the API shows \(sync)")
                syncs.append(try #require(sync["id"]?.stringValue))
            }
            var pages = ["/", "/syncs", "/syncs?status=failed", "/sources"] + syncs.map { "/syncs/\($0)" } + ["/sources/leak", "/sources/bad0"]
            pages += payloads.map { "/sources?q=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") }
            pages += payloads.map { "/syncs?source=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") }
            for path in pages {
                let html = String(buffer: try await client.call(.get, path).body)
                let check = PageCheck(html: html)
                #expect(check.problems.isEmpty, "\(path): \(check.problems)")
                #expect(!check.elements.contains { $0.attributes["onfocus"] != nil || $0.attributes["autofocus"] != nil }, "\(path): an injected attribute")
                #expect(!check.elements.contains { $0.attributes["id"] == "bold" || $0.attributes["id"] == "it" }, "\(path): an injected element")
                #expect(!html.contains("Zq9"), "\(path) shows a secret")
            }
            // The checkpoint is shown, with the token masked.
            let leak = String(buffer: try await client.call(.get, "/syncs/\(syncs.last!)").body)
            #expect(leak.contains("access_token=***"), "the checkpoint's next link, masked")
        }
    }

    /// The source page shows the start of each record, not all of it: a page of 25 records of
    /// 4 MB was 100 MB of HTML per view, and eight views took a node past 1.8 GB. A record
    /// that fits is shown whole; a longer one is cut at 2,048 bytes with its size and a link
    /// to all of it.
    @Test func theSourcePageShowsTheStartOfLongRecords() async throws {
        let filler = String(repeating: "é", count: 150_000)  // 300,000 bytes: a cut can fall inside a character
        try await withHTTPNode(items: 0) { client, fixture, _ in
            fixture.script { _ in
                .json(#"{"rows":[{"id":"big-1","blob":"\#(filler)"},{"id":"big-2","blob":"\#(filler)"},{"id":"small","n":7},{"id":"..","blob":"\#(filler)"}]}"#)
            }
            _ = try await client.createHTTPSource("wide", #"""
                {"url": "\#(fixture.baseURL)/s/rows", "records_path": "/rows", "primary_key": "id"}
                """#)
            let sync = try await client.runSync("wide")
            #expect(sync["status"] == .string("completed"), "\(sync)")
            let response = try await client.call(.get, "/sources/wide")
            let html = String(buffer: response.body)
            #expect(response.body.readableBytes < 20_000, "\(response.body.readableBytes) bytes of HTML")
            #expect(PageCheck(html: html).problems.isEmpty)
            #expect(html.contains("The first 2,048 of 300,024 bytes"), "the cut record says how long it is")
            #expect(html.contains("&quot;n&quot;: 7") || html.contains("\"n\": 7"), "the small record whole, laid out")
            let records = try #require(html.range(of: "id=\"records-title\"")).upperBound
            let link = try #require(html[records...].firstMatch(of: /href="(\/v1\/sources\/[^"]*\/records\/[^"]*)"/).map { String($0.1) })
            #expect(link.hasSuffix("/records/big-1"), "\(link)")
            // No link a browser would turn into another path: `..` is shown, not linked.
            #expect(!html.contains("/records/..\""), "a link to the key .. leads elsewhere in a browser")
            #expect(html.contains("curl --path-as-is"))
            let whole = try await client.call(.get, link)
            #expect(whole.status == .ok && whole.body.readableBytes > 300_000, "\(link): \(whole.status)")
        }
    }

    /// The checker itself finds each fault it is meant to find.
    @Test func thePageCheckFindsWhatItLooksFor() {
        let bad = #"""
            <html><body><input id="a" name="q"/><input id="a" type="checkbox"/><select name="s"></select>
            <img src="https://cdn.example/x.png"/><script>alert(1)</script><p style="color:red" onclick="x()">t</p>
            <a href="//elsewhere.example/">x</a></body></html>
            """#
        let problems = PageCheck(html: bad).problems.joined(separator: "\n")
        for fault in ["id a is used twice", "<input id=a name=q> has no label", "<select id=? name=s> has no label",
                      "loads from elsewhere", "an inline <script>", "an inline style", "an inline handler onclick",
                      "leaves the origin"] {
            #expect(problems.contains(fault), "missed: \(fault)")
        }
        #expect(PageCheck(html: "<p>unclosed <b>bold</p>").problems.first?.hasPrefix("does not parse") == true)
        #expect(PageCheck(html: "<p>a &amp; b <label for=\"x\">X</label><input id=\"x\"/></p>").problems.isEmpty)
    }

    @Test func unknownThingsAndBadFiltersAreHTMLPagesWithTheirStatus() async throws {
        try await TestNode().test { client in
            for (path, status) in [("/sources/nope", HTTPResponse.Status.notFound), ("/syncs/syn_nope", .notFound),
                                   ("/syncs?status=bogus", .unprocessableContent), ("/syncs?since=yesterday", .unprocessableContent),
                                   ("/syncs?source=nobody", .notFound), ("/?window=bogus", .unprocessableContent),
                                   ("/?window=30d", .unprocessableContent), ("/?window=%00", .unprocessableContent),
                                   ("/?window=1e400", .unprocessableContent), ("/?window=24H", .unprocessableContent),
                                   ("/sources?health=bogus", .unprocessableContent), ("/sources?health=OK", .unprocessableContent),
                                   ("/?window=7d", .ok), ("/?window=", .ok), ("/sources?health=failing", .ok), ("/sources?health=healthy", .ok),
                                   ("/sources?health=", .ok)] {
                let response = try await client.call(.get, path)
                #expect(response.status == status, "\(path)")
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                let check = PageCheck(html: String(buffer: response.body))
                #expect(check.problems.isEmpty, "\(path): \(check.problems)")
            }
            for (path, filter) in [("/syncs?since=yesterday", "since"), ("/?window=bogus", "window"), ("/sources?health=bogus", "health")] {
                let bad = PageCheck(html: String(buffer: try await client.call(.get, path).body))
                #expect(bad.text.contains(filter), "\(path): \(bad.text)")
            }
        }
    }

    @Test func withTokensAPageWithoutOneIsItsFrameAndAViewerGetsNoActions() async throws {
        try await TestNode(tokens: ["v-token": .viewer, "a-token": .admin]).test { client in
            let admin: HTTPFields = [.authorization: "Bearer a-token"]
            let created = try await client.call(.post, "/v1/sources", #"{"name": "private-crm", "kind": "synthetic", "config": {"records": 5}}"#, headers: admin)
            let id = try #require(created.json["id"]?.stringValue)
            for path in ["/", "/sources", "/sources/\(id)", "/syncs", "/nodes"] {
                // No token: the frame and the sign-in form, and not a word of data.
                let frame = try await client.call(.get, path)
                #expect(frame.status == .ok)
                let html = String(buffer: frame.body)
                #expect(!html.contains("private-crm") && !html.contains(id), "\(path) shows data without a token")
                let check = PageCheck(html: html)
                #expect(check.problems.isEmpty, "\(path): \(check.problems)")
                #expect(check.elements(named: "form").contains { $0.attributes["id"] == "sign-in" })
                // The content without a token, or with a wrong one, is refused.
                #expect(try await client.call(.get, path, headers: Self.fragment).status == .unauthorized)
                #expect(try await client.call(.get, path, headers: [.authorization: "Bearer wrong"]).status == .unauthorized)
            }
            for (token, buttons) in [("v-token", false), ("a-token", true)] {
                let page = try await client.call(.get, "/sources", headers: [.authorization: "Bearer \(token)"])
                #expect(page.status == .ok)
                let html = String(buffer: page.body)
                #expect(html.contains("private-crm"))
                #expect(!html.contains("<html"), "a token's answer is the content alone")
                #expect(html.contains("data-url=") == buttons, "\(token): action buttons \(buttons ? "missing" : "shown")")
            }
            // The viewer is refused the action anyway.
            let refused = try await client.call(.post, "/v1/sources/\(id)/pause", headers: [.authorization: "Bearer v-token"])
            #expect(refused.status == .forbidden)
            // Assets need no token.
            #expect(try await client.call(.get, "/assets/dashboard.js").status == .ok)
        }
    }
}
