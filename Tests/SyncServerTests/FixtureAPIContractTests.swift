import Foundation
import Testing
import SyncCore
import TestSupport

/// The fixture APIs keep the published pagination contracts: each walked as the real API's
/// documentation tells a client to, every item comes exactly once (Zendesk's time-based
/// export: at least once), and the strict refusals are there.
@Suite("Fixture APIs keep the real APIs' pagination contracts")
struct FixtureAPIContractTests {
    let client = APIClient(baseURL: "")

    func withAPI(_ shape: FixtureAPI.Shape, items: Int, _ body: (FixtureAPI) async throws -> Void) async throws {
        let api = FixtureAPI(shape, items: items)
        try await api.start()
        do {
            try await body(api)
        } catch {
            await api.stop()
            throw error
        }
        await api.stop()
    }

    func get(_ url: String, headers: [(String, String)] = []) async throws -> HTTPResult {
        try await client.request(.GET, url, headers: headers)
    }

    func post(_ url: String, _ body: String) async throws -> HTTPResult {
        try await client.request(.POST, url, json: body)
    }

    static func enc(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }

    /// The rel → URL pairs of an RFC 8288 `Link` header.
    static func links(_ header: String?) -> [String: String] {
        var out: [String: String] = [:]
        for part in (header ?? "").split(separator: ",") {
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let target = pieces.first, target.hasPrefix("<"), target.hasSuffix(">") else { continue }
            for p in pieces.dropFirst() where p.hasPrefix("rel=") {
                out[p.dropFirst(4).trimmingCharacters(in: CharacterSet(charactersIn: "\""))] = String(target.dropFirst().dropLast())
            }
        }
        return out
    }

    @Test func github() async throws {
        try await withAPI(.github, items: 95) { api in
            api.update(ns: [3, 50])
            var url: String? = api.baseURL + "/repos/acme/widgets/issues?state=all&per_page=10&sort=updated&direction=asc"
            var ids: [Int] = [], stamps: [String] = [], pages = 0
            var lastLinks: [String: String] = [:]
            while let next = url, pages < 50 {
                let r = try await get(next)
                #expect(r.status == 200)
                let rows = try #require(r.json.arrayValue)
                ids += rows.compactMap { $0["id"]?.intValue }
                stamps += rows.compactMap { $0["updated_at"]?.stringValue }
                lastLinks = Self.links(r.headers.first(name: "link"))
                if pages == 0 {
                    #expect(lastLinks["prev"] == nil && lastLinks["first"] == nil)
                    #expect(lastLinks["last"]?.contains("page=10") == true)
                    #expect(lastLinks["next"]?.hasPrefix(api.baseURL) == true)
                    #expect(lastLinks["next"]?.contains("sort=updated") == true)
                }
                pages += 1
                url = lastLinks["next"]
            }
            #expect(pages == 10)
            #expect(ids.count == 95 && Set(ids) == Set(1001...1095))
            #expect(stamps == stamps.sorted() && stamps.allSatisfy { $0.hasSuffix("Z") && $0.count == 20 })
            #expect(ids.suffix(2) == [1003, 1050])
            #expect(lastLinks["prev"] != nil && lastLinks["first"] != nil)

            // since keeps updated_at >= since.
            let since = FixtureAPI.timestamp(try #require(api.item(3)).updatedEpoch, .github)
            let changed = try await get(api.baseURL + "/repos/acme/widgets/issues?state=all&sort=updated&direction=asc&since=\(since)")
            #expect(changed.json.arrayValue?.compactMap { $0["number"]?.intValue } == [3, 50])
            #expect(changed.headers.first(name: "link") == nil)
            // GitHub's default: created, newest first, 30 a page.
            let plain = try await get(api.baseURL + "/repos/acme/widgets/issues")
            #expect(plain.json.arrayValue?.count == 30)
            #expect(plain.json.arrayValue?.first?["number"]?.intValue == 95)
            let beyond = try await get(api.baseURL + "/repos/acme/widgets/issues?per_page=10&page=99")
            #expect(beyond.status == 200 && beyond.json.arrayValue?.isEmpty == true)
        }
    }

    @Test func stripe() async throws {
        try await withAPI(.stripe, items: 25) { api in
            api.update(ns: [5])
            var after: String?
            var ids: [String] = [], created: [Int] = [], pages = 0
            repeat {
                let r = try await get(api.baseURL + "/v1/customers?limit=10" + (after.map { "&starting_after=\($0)" } ?? ""))
                #expect(r.status == 200 && r.json["object"]?.stringValue == "list")
                let data = try #require(r.json["data"]?.arrayValue)
                ids += data.compactMap { $0["id"]?.stringValue }
                created += data.compactMap { $0["created"]?.intValue }
                pages += 1
                after = r.json["has_more"]?.boolValue == true ? data.last?["id"]?.stringValue : nil
            } while after != nil && pages < 20
            #expect(pages == 3)
            #expect(ids.count == 25 && Set(ids).count == 25 && ids.first == "cus_000005")
            #expect(created == created.sorted(by: >))

            // created[gte], brackets percent-encoded.
            let since = try #require(api.item(20)).updatedEpoch
            let recent = try await get(api.baseURL + "/v1/customers?created%5Bgte%5D=\(since)&limit=100")
            #expect(recent.json["data"]?.arrayValue?.count == 7)

            // ending_before: the page just before the cursor.
            let before = try await get(api.baseURL + "/v1/customers?limit=2&ending_before=\(ids[3])")
            #expect(before.json["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == Array(ids[1...2]))
            #expect(before.json["has_more"]?.boolValue == true)

            let missing = try await get(api.baseURL + "/v1/customers?starting_after=cus_999999")
            #expect(missing.status == 400)
            #expect(missing.json["error"]?["type"]?.stringValue == "invalid_request_error")
            #expect(missing.json["error"]?["param"]?.stringValue == "starting_after")
            #expect(missing.json["error"]?["message"]?.stringValue == "No such customer: 'cus_999999'")
            let unknown = try await get(api.baseURL + "/v1/customers?page=2")
            #expect(unknown.status == 400)
        }
    }

    @Test func hubspot() async throws {
        try await withAPI(.hubspot, items: 23) { api in
            var url: String? = api.baseURL + "/crm/v3/objects/contacts?limit=10&archived=false"
            var ids: [String] = [], pages = 0
            var firstAfter: String?
            while let next = url, pages < 20 {
                let r = try await get(next)
                #expect(r.status == 200)
                ids += try #require(r.json["results"]?.arrayValue).compactMap { $0["id"]?.stringValue }
                firstAfter = firstAfter ?? r.json["paging"]?["next"]?["after"]?.stringValue
                url = r.json["paging"]?["next"]?["link"]?.stringValue
                pages += 1
            }
            #expect(pages == 3 && ids == (1...23).map(String.init))
            let token = try #require(firstAfter)
            #expect(token != "11")
            // The token as a parameter, encoded by the client.
            let byToken = try await get(api.baseURL + "/crm/v3/objects/contacts?limit=10&after=\(Self.enc(token))")
            #expect(byToken.json["results"]?.arrayValue?.first?["id"]?.stringValue == "11")

            // Search: lastmodifieddate GTE, ascending, paged by offset.
            api.update(ns: [2, 4])
            let threshold = try #require(api.item(10)).updatedEpoch * 1000
            var after: String?
            var found: [String] = [], stamps: [String] = []
            var total: Int?
            pages = 0
            repeat {
                let body = #"{"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GTE","value":"\#(threshold)"}]}],"sorts":[{"propertyName":"lastmodifieddate","direction":"ASCENDING"}],"properties":["email"],"limit":5\#(after.map { #","after":"\#($0)""# } ?? "")}"#
                let r = try await post(api.baseURL + "/crm/v3/objects/contacts/search", body)
                #expect(r.status == 200)
                total = r.json["total"]?.intValue
                let results = try #require(r.json["results"]?.arrayValue)
                found += results.compactMap { $0["id"]?.stringValue }
                stamps += results.compactMap { $0["properties"]?["lastmodifieddate"]?.stringValue }
                after = r.json["paging"]?["next"]?["after"]?.stringValue
                pages += 1
            } while after != nil && pages < 20
            #expect(total == 16 && found.count == 16 && Set(found).count == 16)
            #expect(found.suffix(2) == ["2", "4"] && stamps == stamps.sorted())
            let gt = try await post(api.baseURL + "/crm/v3/objects/contacts/search",
                                    #"{"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GT","value":\#(threshold)}]}],"limit":200}"#)
            #expect(gt.json["total"]?.intValue == 15)

            let far = try await post(api.baseURL + "/crm/v3/objects/contacts/search", #"{"limit":100,"after":"10001"}"#)
            #expect(far.status == 400 && far.json["category"]?.stringValue == "VALIDATION_ERROR")
            let notJSON = try await post(api.baseURL + "/crm/v3/objects/contacts/search", "not json")
            #expect(notJSON.status == 400)
        }
    }

    @Test func salesforce() async throws {
        try await withAPI(.salesforce, items: 45) { api in
            api.update(ns: [1])
            let since = FixtureAPI.timestamp(try #require(api.item(5)).updatedEpoch, .salesforce)
            let soql = "SELECT Id, Name, SystemModstamp FROM Account WHERE SystemModstamp >= \(since) ORDER BY SystemModstamp"
            let batch = [("Sforce-Query-Options", "batchSize=10")]
            var url: String? = api.baseURL + "/services/data/v59.0/query?q=" + Self.enc(soql)
            var ids: [String] = [], stamps: [String] = [], pages = 0
            while let next = url, pages < 20 {
                let r = try await get(next, headers: batch)
                #expect(r.status == 200 && r.json["totalSize"]?.intValue == 42)
                let records = try #require(r.json["records"]?.arrayValue)
                ids += records.compactMap { $0["Id"]?.stringValue }
                stamps += records.compactMap { $0["SystemModstamp"]?.stringValue }
                #expect(records.first?["attributes"]?["type"]?.stringValue == "Account")
                pages += 1
                if r.json["done"]?.boolValue == true {
                    #expect(r.json["nextRecordsUrl"] == nil)
                    url = nil
                } else {
                    let relative = try #require(r.json["nextRecordsUrl"]?.stringValue)
                    #expect(relative.hasPrefix("/services/data/v59.0/query/01g"))
                    url = api.baseURL + relative
                }
            }
            #expect(pages == 5 && ids.count == 42 && Set(ids).count == 42)
            #expect(ids.last == "001000000000000001" && stamps == stamps.sorted())
            #expect(stamps.allSatisfy { $0.hasSuffix(".000+0000") })
            #expect(api.requests.last?.headers["sforce-query-options"] == "batchSize=10")

            let whole = try await get(api.baseURL + "/services/data/v59.0/query?q=" + Self.enc("SELECT Id FROM Account"))
            #expect(whole.json["done"]?.boolValue == true && whole.json["records"]?.arrayValue?.count == 45)
            let bad = try await get(api.baseURL + "/services/data/v59.0/query/01gNOPE0000000000-10")
            #expect(bad.status == 400 && bad.json.arrayValue?.first?["errorCode"]?.stringValue == "INVALID_QUERY_LOCATOR")
            let malformed = try await get(api.baseURL + "/services/data/v59.0/query?q=" + Self.enc("DELETE FROM Account"))
            #expect(malformed.status == 400 && malformed.json.arrayValue?.first?["errorCode"]?.stringValue == "MALFORMED_QUERY")
        }
    }

    @Test func shopify() async throws {
        try await withAPI(.shopify, items: 120) { api in
            let min = Self.enc(FixtureAPI.timestamp(try #require(api.item(11)).updatedEpoch, .shopify))
            let path = "/admin/api/2024-01/products.json"
            var url: String? = api.baseURL + path + "?limit=25&updated_at_min=\(min)"
            var ids: [Int] = [], pages = 0
            var firstPage: [Int] = []
            var secondLinks: [String: String] = [:]
            while let next = url, pages < 20 {
                let r = try await get(next)
                #expect(r.status == 200)
                let products = try #require(r.json["products"]?.arrayValue)
                let pageIDs = products.compactMap { $0["id"]?.intValue }
                ids += pageIDs
                #expect(products.first?["updated_at"]?.stringValue?.hasSuffix("-04:00") == true)
                let links = Self.links(r.headers.first(name: "link"))
                if pages == 0 {
                    firstPage = pageIDs
                    #expect(links["previous"] == nil)
                }
                if pages == 1 { secondLinks = links }
                pages += 1
                url = links["next"]
            }
            #expect(pages == 5 && ids.count == 110 && Set(ids) == Set((11...120).map { 632_910_392 + $0 }))
            let previous = try #require(secondLinks["previous"])
            let back = try await get(previous)
            #expect(back.json["products"]?.arrayValue?.compactMap { $0["id"]?.intValue } == firstPage)

            // The page_info link carries the filters: a filter beside it is refused.
            let next = try #require(secondLinks["next"])
            let refused = try await get(next + "&updated_at_min=\(min)")
            #expect(refused.status == 400)
            #expect(refused.json["errors"]?["page_info"]?.stringValue == "Invalid value.")
            let smaller = try await get(next.replacingOccurrences(of: "limit=25", with: "limit=5"))
            #expect(smaller.status == 200 && smaller.json["products"]?.arrayValue?.count == 5)
        }
    }

    @Test func zendeskTimeBased() async throws {
        try await withAPI(.zendesk, items: 37) { api in
            api.update(ns: [1])
            var url = api.baseURL + "/api/v2/incremental/tickets.json?start_time=\(FixtureAPI.epochBase)&per_page=10"
            var ids: [Int] = [], pages = 0
            while pages < 50 {
                let r = try await get(url)
                #expect(r.status == 200)
                let tickets = try #require(r.json["tickets"]?.arrayValue)
                ids += tickets.compactMap { $0["id"]?.intValue }
                #expect(r.json["count"]?.intValue == tickets.count)
                #expect(r.json["end_time"]?.intValue == tickets.last?["generated_timestamp"]?.intValue)
                pages += 1
                if r.json["end_of_stream"]?.boolValue == true { break }
                url = try #require(r.json["next_page"]?.stringValue)
            }
            #expect(Set(ids) == Set(1...37) && ids.last == 1)
            #expect(ids.count > 37)  // the boundary item comes again on the next page

            let missing = try await get(api.baseURL + "/api/v2/incremental/tickets.json")
            #expect(missing.status == 400 && missing.json["error"]?.stringValue == "InvalidPaginationParameter")
            let future = try await get(api.baseURL + "/api/v2/incremental/tickets.json?start_time=4000000000")
            #expect(future.status == 400)
        }
    }

    @Test func zendeskCursorAndJSONLines() async throws {
        try await withAPI(.zendesk, items: 37) { api in
            var url = api.baseURL + "/api/v2/incremental/tickets/cursor.json?start_time=\(FixtureAPI.epochBase)&per_page=10"
            var ids: [Int] = [], pages = 0
            var after: String?
            while pages < 50 {
                let r = try await get(url)
                #expect(r.status == 200)
                ids += try #require(r.json["tickets"]?.arrayValue).compactMap { $0["id"]?.intValue }
                after = r.json["after_cursor"]?.stringValue
                pages += 1
                if r.json["end_of_stream"]?.boolValue == true { break }
                url = try #require(r.json["after_url"]?.stringValue)
            }
            #expect(pages == 4 && ids == Array(1...37))
            // After the end of the stream the after_cursor still names where to continue.
            api.insert(count: 3)
            let later = try await get(api.baseURL + "/api/v2/incremental/tickets/cursor.json?cursor=\(try #require(after))")
            #expect(later.json["tickets"]?.arrayValue?.compactMap { $0["id"]?.intValue } == [38, 39, 40])
            #expect(later.json["end_of_stream"]?.boolValue == true)
        }
        try await withAPI(.zendesk, items: 3000) { api in
            api.padding = 20
            let r = try await get(api.baseURL + "/api/v2/incremental/tickets.jsonl?start_time=\(FixtureAPI.epochBase + 1001)")
            #expect(r.status == 200 && r.contentType == "application/x-ndjson")
            #expect(r.headers.first(name: "content-length") == nil)  // streamed (chunked)
            let lines = r.text.split(separator: "\n")
            #expect(lines.count == 2000)
            let first = try parseJSON(Array(lines[0].utf8))
            #expect(first["id"]?.intValue == 1001 && first["body"]?.stringValue?.count == 20)
            #expect(lines.allSatisfy { $0.hasPrefix("{") && $0.hasSuffix("}") })
        }
    }

    @Test func graphql() async throws {
        try await withAPI(.graphql, items: 33) { api in
            api.update(ns: [7])
            func page(first: Int, after: String?, since: String?) async throws -> JSONValue {
                let variables = #"{"first":\#(first),"after":\#(after.map { "\"\($0)\"" } ?? "null"),"updatedSince":\#(since.map { "\"\($0)\"" } ?? "null")}"#
                let r = try await post(api.baseURL + "/graphql", #"{"query":"query($first:Int,$after:String,$updatedSince:DateTime){items(first:$first,after:$after,updatedSince:$updatedSince){nodes{id name updatedAt} pageInfo{hasNextPage endCursor}}}","variables":\#(variables)}"#)
                #expect(r.status == 200)
                return r.json
            }
            func walk(first: Int, since: String?) async throws -> (ids: [String], pages: Int) {
                var cursor: String?, ids: [String] = [], pages = 0
                repeat {
                    let items = try await page(first: first, after: cursor, since: since)["data"]?["items"]
                    ids += items?["nodes"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                    cursor = items?["pageInfo"]?["hasNextPage"]?.boolValue == true ? items?["pageInfo"]?["endCursor"]?.stringValue : nil
                    pages += 1
                } while cursor != nil && pages < 20
                return (ids, pages)
            }
            let all = try await walk(first: 10, since: nil)
            #expect(all.pages == 4 && all.ids == (1...33).map { "gid://fixture/Item/\($0)" })
            let since = FixtureAPI.timestamp(try #require(api.item(30)).updatedEpoch, .graphql)
            let changed = try await walk(first: 2, since: since)
            #expect(changed.pages == 3 && changed.ids == [30, 31, 32, 33, 7].map { "gid://fixture/Item/\($0)" })

            let bad = try await page(first: 10, after: "nope", since: nil)
            #expect(bad["data"]?.isNull == true && bad["errors"]?.arrayValue?.first?["message"]?.stringValue == "invalid cursor")
            let viaGet = try await get(api.baseURL + "/graphql")
            #expect(viaGet.status == 400)
            let notJSON = try await post(api.baseURL + "/graphql", "query { items { nodes { id } } }")
            #expect(notJSON.status == 400)
        }
    }

    @Test func parentChild() async throws {
        try await withAPI(.parentChild, items: 12) { api in
            api.contactsPerAccount = 3
            api.addContacts(account: 2, count: 2)
            api.updateContact(account: 5, id: 1)
            /// Pages from 1 until an empty one.
            func walk(_ path: String, _ key: String) async throws -> [JSONValue] {
                var rows: [JSONValue] = []
                for page in 1...50 {
                    let r = try await get(api.baseURL + path + "?page=\(page)&per_page=2")
                    #expect(r.status == 200)
                    let batch = try #require(r.json[key]?.arrayValue)
                    if batch.isEmpty { break }
                    rows += batch
                }
                return rows
            }
            let accounts = try await walk("/accounts", "accounts").compactMap { $0["id"]?.stringValue }
            #expect(accounts == (1...12).map { "acc_\($0)" })
            var keys: [String] = []
            var contactIDs = Set<Int>()
            for account in accounts {
                for contact in try await walk("/accounts/\(account)/contacts", "contacts") {
                    let id = try #require(contact["id"]?.intValue)
                    #expect(contact["account_id"]?.stringValue == account)
                    contactIDs.insert(id)
                    keys.append("\(account)/\(id)")
                }
            }
            #expect(keys.count == 38 && Set(keys).count == 38 && contactIDs == Set(1...5))
            #expect(api.contactRequestCount(account: 2) == 4 && api.contactRequestCount(account: 1) == 3)

            let since = FixtureAPI.timestamp(api.contacts(account: 5)[0].updatedEpoch, .parentChild)
            let changed = try await get(api.baseURL + "/accounts/acc_5/contacts?updated_since=\(since)")
            #expect(changed.json["contacts"]?.arrayValue?.compactMap { $0["id"]?.intValue } == [1])
            let none = try await get(api.baseURL + "/accounts/acc_1/contacts?updated_since=\(since)")
            #expect(none.json["contacts"]?.arrayValue?.isEmpty == true)
            let unknown = try await get(api.baseURL + "/accounts/acc_99/contacts")
            #expect(unknown.status == 404)
        }
    }

    @Test func delayAndLog() async throws {
        try await withAPI(.github, items: 3) { api in
            api.setDelay(seconds: 0.3)
            let started = ContinuousClock.now
            _ = try await get(api.baseURL + "/repos/acme/widgets/issues?state=all")
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            let logged = try #require(api.requests.last)
            #expect(logged.method == "GET" && logged.path == "/repos/acme/widgets/issues" && logged.query == "state=all")
            #expect(logged.parameters["state"] == "all")
            api.clearLog()
            #expect(api.requests.isEmpty)
        }
    }
}
