import Foundation
import Testing
import SyncConnectors
import SyncCore
import TestSupport

/// A `synthetic` source whose pages take `delayMs` each to read.
func createSlowSource(_ client: APIClient, name: String = "slow", records: Int, pageSize: Int, delayMs: Int) async throws {
    let r = try await client.post("/v1/sources", #"{"name": "\#(name)", "kind": "synthetic", "config": {"records": \#(records), "page_size": \#(pageSize), "delay_ms_per_page": \#(delayMs)}}"#)
    #expect(r.status == 201, "\(r.text)")
}

/// `GET /v1/syncs/{id}`.
func sync(_ client: APIClient, _ id: String) async throws -> JSONValue {
    try await client.get("/v1/syncs/\(id)").json
}

/// Every key of a synthetic source's record store, in order, through the records API's
/// keyset pages; each record's bytes are checked against what the generator produces.
func syntheticRecordKeys(_ client: APIClient, source: String) async throws -> [String] {
    var keys: [String] = []
    var cursor: String?
    repeat {
        let page = try await client.get("/v1/sources/\(source)/records?limit=1000" + (cursor.map { "&after=\($0)" } ?? ""))
        for item in page.json["items"]?.arrayValue ?? [] {
            let key = try #require(item["key"]?.stringValue)
            keys.append(key)
            let expected = try parseJSON(SyntheticSource.record(Int(key)!))
            #expect(item["data"] == expected)
        }
        cursor = page.json["next_cursor"]?.stringValue
    } while cursor != nil
    return keys
}
