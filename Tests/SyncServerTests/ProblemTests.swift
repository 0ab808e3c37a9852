import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import GRDB
import Testing
import SyncCore
import SyncStore
import TestSupport

/// Every error code of docs/api.md with its HTTP status, content type and extra members.
@Suite("Problem responses")
struct ProblemTests {
    func expectProblem(_ r: TestResponse, _ status: HTTPResponse.Status, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "body: \(String(buffer: r.body))", sourceLocation: sourceLocation)
        #expect(r.headers[.contentType] == "application/problem+json", sourceLocation: sourceLocation)
        #expect(r.problemCode == code, sourceLocation: sourceLocation)
        #expect(r.json["type"]?.stringValue == "/problems/" + code.replacingOccurrences(of: "_", with: "-"), sourceLocation: sourceLocation)
        #expect(r.json["status"]?.intValue == Int(status.code), sourceLocation: sourceLocation)
        #expect(r.json["title"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        #expect(r.json["detail"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        #expect(r.headers[HTTPField.Name("X-Request-Id")!] != nil, sourceLocation: sourceLocation)
    }

    @Test func validationFailures() async throws {
        try await TestNode().test { client in
            expectProblem(try await client.call(.post, "/v1/sources", "{not json"), .badRequest, "validation_failed")
            expectProblem(try await client.call(.post, "/v1/sources", ""), .badRequest, "validation_failed")
            let wrongTypes = try await client.call(.post, "/v1/sources", #"{"name": 5, "kind": "nope", "config": [], "priority": "high", "surprise": 1}"#)
            expectProblem(wrongTypes, .unprocessableContent, "validation_failed")
            let fields = Set(wrongTypes.json["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? [])
            #expect(fields == ["name", "kind", "config", "priority", "surprise"])
            let badConfig = try await client.call(.post, "/v1/sources", #"{"name": "s", "kind": "synthetic", "config": {"records": -1, "page_size": "x"}}"#)
            expectProblem(badConfig, .unprocessableContent, "validation_failed")
            #expect(Set(badConfig.json["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? []) == ["config.records", "config.page_size"])
            expectProblem(try await client.call(.post, "/v1/sources", "[1,2]"), .unprocessableContent, "validation_failed")
            expectProblem(try await client.call(.get, "/v1/syncs?limit=0"), .unprocessableContent, "validation_failed")
            expectProblem(try await client.call(.get, "/v1/syncs?limit=1001"), .unprocessableContent, "validation_failed")
            expectProblem(try await client.call(.get, "/v1/syncs?cursor=bogus"), .unprocessableContent, "validation_failed")
            expectProblem(try await client.call(.get, "/v1/syncs?status=in_progress"), .unprocessableContent, "validation_failed")
            _ = try await client.createSource("s1")
            expectProblem(try await client.call(.post, "/v1/sources/s1/syncs", #"{"mode": "sideways"}"#), .unprocessableContent, "validation_failed")
            expectProblem(try await client.call(.post, "/v1/sources/s1/syncs", #"{"mode": "incremental"}"#), .unprocessableContent, "validation_failed")
        }
    }

    @Test func notFoundAndMethodNotAllowed() async throws {
        try await TestNode().test { client in
            expectProblem(try await client.call(.get, "/v1/sources/nope"), .notFound, "not_found")
            expectProblem(try await client.call(.get, "/v1/syncs/syn_nope"), .notFound, "not_found")
            expectProblem(try await client.call(.post, "/v1/syncs/syn_nope/cancel"), .notFound, "not_found")
            expectProblem(try await client.call(.get, "/v2/anything"), .notFound, "not_found")
            _ = try await client.createSource("s1")
            expectProblem(try await client.call(.get, "/v1/sources/s1/records/42"), .notFound, "not_found")
            let r = try await client.call(.put, "/v1/sources")
            expectProblem(r, .methodNotAllowed, "method_not_allowed")
            #expect(r.headers[.allow] == "GET, HEAD, POST")
            expectProblem(try await client.call(.delete, "/v1/syncs/x"), .methodNotAllowed, "method_not_allowed")
            // Allow lists what the path really serves: a literal segment is routed before a
            // parameter, so /v1/syncs/cancel serves POST only (not the GET of /v1/syncs/{id}).
            for (method, path, allow) in [
                (HTTPRequest.Method.get, "/v1/syncs/cancel", "POST"), (.options, "/v1/syncs/cancel", "POST"), (.head, "/v1/syncs/retry", "POST"),
                (.delete, "/v1/syncs/x", "GET, HEAD"), (.put, "/v1/syncs/x/cancel", "POST"), (.get, "/v1/syncs/x/cancel", "POST"),
                (.post, "/v1/sources/s1", "DELETE, GET, HEAD, PATCH"), (.put, "/v1/maintenance/prune", "POST"),
            ] {
                let refused = try await client.call(method, path)
                #expect(refused.status == .methodNotAllowed, "\(method) \(path): \(refused.status)")
                #expect(refused.headers[.allow] == allow, "\(method) \(path): \(refused.headers[.allow] ?? "none")")
                if method != .head {
                    #expect(refused.json["detail"]?.stringValue?.hasSuffix("allowed: \(allow).") == true, "\(String(buffer: refused.body))")
                }
            }
        }
    }

    @Test func conflicts() async throws {
        try await TestNode().test { client in
            _ = try await client.createSource("s1")
            expectProblem(try await client.call(.post, "/v1/sources", #"{"name": "s1", "kind": "synthetic", "config": {"records": 1}}"#), .conflict, "name_taken")
            _ = try await client.createSource("s2")
            expectProblem(try await client.call(.patch, "/v1/sources/s2", #"{"name": "s1"}"#), .conflict, "name_taken")

            let first = try await client.call(.post, "/v1/sources/s1/syncs")
            #expect(first.status == .accepted)
            let id = try #require(first.json["id"]?.stringValue)
            let dup = try await client.call(.post, "/v1/sources/s1/syncs")
            expectProblem(dup, .conflict, "sync_already_active")
            #expect(dup.json["active_sync_id"]?.stringValue == id)

            expectProblem(try await client.call(.delete, "/v1/sources/s1"), .conflict, "source_in_use")
            let retry = try await client.call(.post, "/v1/syncs/\(id)/retry")
            expectProblem(retry, .conflict, "invalid_state")
            #expect(retry.json["current_status"]?.stringValue == "queued")

            #expect(try await client.call(.post, "/v1/syncs/\(id)/cancel").status == .accepted)
            #expect(try await client.call(.post, "/v1/syncs/\(id)/cancel").status == .accepted)
            #expect(try await client.call(.delete, "/v1/sources/s1").status == .noContent)
        }
    }

    @Test func cancellingACompletedSyncIsInvalidState() async throws {
        try await TestNode(workers: 1).test { client in
            _ = try await client.createSource("s1", records: 3)
            let id = try #require(try await client.call(.post, "/v1/sources/s1/syncs").json["id"]?.stringValue)
            _ = try await eventually { () -> Bool? in
                try await client.call(.get, "/v1/syncs/\(id)").json["status"]?.stringValue == "completed" ? true : nil
            }
            let r = try await client.call(.post, "/v1/syncs/\(id)/cancel")
            expectProblem(r, .conflict, "invalid_state")
            #expect(r.json["current_status"]?.stringValue == "completed")
        }
    }

    @Test func triggerRateLimit() async throws {
        try await TestNode().test { client in
            _ = try await client.createSource("s1", extra: #", "min_trigger_interval_seconds": 120"#)
            let id = try #require(try await client.call(.post, "/v1/sources/s1/syncs").json["id"]?.stringValue)
            _ = try await client.call(.post, "/v1/syncs/\(id)/cancel")
            let r = try await client.call(.post, "/v1/sources/s1/syncs")
            expectProblem(r, .tooManyRequests, "rate_limited")
            let retryAfter = try #require(r.headers[.retryAfter].flatMap(Int.init))
            #expect(retryAfter > 100 && retryAfter <= 120)
            #expect(r.json["retry_after_seconds"]?.intValue == retryAfter)
        }
    }

    @Test func payloadTooLarge() async throws {
        try await TestNode(maxBodyBytes: 4096).test { client in
            let big = #"{"name": "s", "kind": "synthetic", "config": {"records": 1, "pad": ""# + String(repeating: "x", count: 10_000) + #""}}"#
            expectProblem(try await client.call(.post, "/v1/sources", big), .contentTooLarge, "payload_too_large")
        }
    }

    @Test func authentication() async throws {
        try await TestNode(tokens: ["adm1n": .admin, "v1ewer": .viewer]).test { client in
            let anonymous = try await client.call(.get, "/v1/sources")
            expectProblem(anonymous, .unauthorized, "unauthorized")
            #expect(anonymous.headers[.wwwAuthenticate] == "Bearer")
            expectProblem(try await client.call(.get, "/v1/sources", headers: [.authorization: "Bearer wrong"]), .unauthorized, "unauthorized")
            expectProblem(try await client.call(.get, "/v1/sources", headers: [.authorization: "Basic adm1n"]), .unauthorized, "unauthorized")
            #expect(try await client.call(.get, "/v1/sources", headers: [.authorization: "Bearer v1ewer"]).status == .ok)
            let viewerWrite = try await client.call(.post, "/v1/sources", #"{"name": "s", "kind": "synthetic", "config": {"records": 1}}"#,
                                                    headers: [.authorization: "Bearer v1ewer"])
            expectProblem(viewerWrite, .forbidden, "forbidden")
            #expect(try await client.call(.post, "/v1/sources", #"{"name": "s", "kind": "synthetic", "config": {"records": 1}}"#,
                                          headers: [.authorization: "Bearer adm1n"]).status == .created)
            for open in ["/healthz", "/readyz"] {
                #expect(try await client.call(.get, open).status == .ok)
            }
        }
    }

    @Test func readinessFailsWhileShuttingDownWorkers() async throws {
        let node = try await TestNode(workers: 1)
        try await node.test { client in
            #expect(try await client.call(.get, "/readyz").status == .ok)
            node.pool.beginShutdown()
            expectProblem(try await client.call(.get, "/readyz"), .serviceUnavailable, "unavailable")
            #expect(try await client.call(.get, "/healthz").status == .ok)
        }
    }

    @Test func anUnexpectedFailureIsAn500WithARequestIDAndNoInternals() async throws {
        let node = try await TestNode()
        try await node.test { client in
            _ = try await client.createSource("s")
            let id = try #require(try await client.call(.post, "/v1/sources/s/syncs").json["id"]?.stringValue)
            // Break the database behind the server's back: a bug-shaped failure.
            let path = try #require((node.store as? DatabaseStore)?.sqlitePath)
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            try await DatabaseQueue(path: path, configuration: configuration).write { db in try db.execute(sql: "DROP TABLE record_errors") }
            let r = try await client.call(.get, "/v1/syncs/\(id)/record-errors")
            expectProblem(r, .internalServerError, "internal")
            let requestID = try #require(r.headers[HTTPField.Name("X-Request-Id")!])
            #expect(r.json["request_id"]?.stringValue == requestID)
            let body = String(buffer: r.body).lowercased()
            for leak in ["record_errors", "select", "sqlite", "grdb", ".swift"] { #expect(!body.contains(leak), "leaked \(leak)") }
        }
    }

    @Test func requestIDsAreEchoedOrMinted() async throws {
        try await TestNode().test { client in
            let echoed = try await client.call(.get, "/healthz", headers: [HTTPField.Name("X-Request-Id")!: "abc-123"])
            #expect(echoed.headers[HTTPField.Name("X-Request-Id")!] == "abc-123")
            let minted = try await client.call(.get, "/v1/nothing")
            #expect(minted.headers[HTTPField.Name("X-Request-Id")!]?.hasPrefix("req_") == true)
        }
    }
}
