import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing
import SyncCore
import TestSupport

/// U+0000 is valid JSON (`\u0000`) and valid in a URL (`%00`), and PostgreSQL's text and
/// `jsonb` cannot hold it: a webhook secret with one made every end of a sync fail (the
/// sync ran again and again past its attempts), a concurrency key with one stopped every
/// scheduler of the cluster, and lookups by it answered 500. Refused where it comes in,
/// the same on both stores: a body's string or member name is a `422` naming the field, a
/// path segment names nothing (`404`), a query parameter is a `422` naming it.
@Suite("U+0000 from outside")
struct NulCharacterTests {
    @Test(arguments: StoreBackend.allCases)
    func everyWayInRefusesItAndNothingAnswers500(_ backend: StoreBackend) async throws {
        try await TestNode(backend: backend).test { client in
            _ = try await client.createSource("s", records: 1)
            for (method, path, body, field) in [
                (HTTPRequest.Method.post, "/v1/sources", #"{"name": "n", "kind": "synthetic", "config": {}, "notify": [{"url": "http://127.0.0.1:9/", "secret": "a\u0000b"}]}"#, "notify[0].secret"),
                (.post, "/v1/sources", #"{"name": "n", "kind": "synthetic", "config": {}, "notify": [{"url": "http://127.0.0.1:9/\u0000"}]}"#, "notify[0].url"),
                (.patch, "/v1/sources/s", #"{"concurrency": {"key": "a\u0000b", "limit": 1}, "schedule": {"cron": "* * * * *"}}"#, "concurrency.key"),
                (.patch, "/v1/sources/s", #"{"rate_limit": {"key": "k\u0000", "requests_per_second": 5}}"#, "rate_limit.key"),
                (.patch, "/v1/sources/s", #"{"config": {"records": 1, "x\u0000": 1}}"#, "config.x\u{0}"),
                (.post, "/v1/sources/s/syncs", #"{"mode": "full\u0000"}"#, "mode"),
                (.post, "/v1/syncs/cancel", #"{"source_id": "a\u0000"}"#, "source_id"),
                (.post, "/v1/syncs/retry", #"{"source_id": "a\u0000"}"#, "source_id"),
            ] {
                let r = try await client.call(method, path, body)
                #expect(r.status == .unprocessableContent, "\(path) \(body): \(r.status) \(String(buffer: r.body))")
                #expect(r.json["errors"]?.arrayValue?.first?["field"]?.stringValue == field, "\(path) \(body): \(String(buffer: r.body))")
            }
            for path in ["/v1/sources/s%00", "/v1/sources/s/records/a%00b", "/v1/syncs/syn_%00"] {
                let r = try await client.call(.get, path)
                #expect(r.status == .notFound, "\(path): \(r.status) \(String(buffer: r.body))")
            }
            #expect(try await client.call(.post, "/v1/nodes/a%00b/drain").status == .notFound)
            for path in ["/v1/syncs?source_id=a%00", "/v1/syncs?before=a%00", "/v1/sources?after=a%00", "/sources/s?after=a%00b",
                         "/syncs?source=a%00", "/syncs?before=a%00", "/sources?after=a%00", "/v1/events?source_id=%00"] {
                let r = try await client.call(.get, path)
                #expect(r.status == .unprocessableContent, "\(path): \(r.status) \(String(buffer: r.body))")
            }
            // The neighbours pass: U+0001 and an escaped backslash-zero are ordinary text.
            let near = try await client.call(.patch, "/v1/sources/s", #"{"concurrency": {"key": "a\u0001b\\0", "limit": 1}}"#)
            #expect(near.status == .ok, "\(String(buffer: near.body))")
            #expect(try await client.call(.post, "/v1/sources/s/syncs", "{}").status == .accepted)
        }
    }
}
