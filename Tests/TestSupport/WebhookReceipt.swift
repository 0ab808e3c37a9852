import Crypto
import Foundation
import SyncCore

/// A webhook POST as the fixture receiver logged it, checked the way a receiver would
/// (docs/webhooks.md), with swift-crypto directly rather than the server's own signer.
public struct WebhookReceipt: Sendable {
    public let request: FixtureUpstream.LoggedRequest
    public init(_ request: FixtureUpstream.LoggedRequest) { self.request = request }

    public var json: JSONValue { (try? parseJSON(request.body)) ?? .null }
    public var deliveryID: String? { json["id"]?.stringValue }
    public var event: String? { json["event"]?.stringValue }

    /// Whether `X-Tributary-Signature` is `t=<t>,v1=<hex>` with the HMAC-SHA256 of `"<t>.<body>"`
    /// under `secret`, and `t` within `tolerance` seconds of now.
    public func signatureIsValid(secret: String, tolerance: Double = 300) -> Bool {
        guard let header = request.headers["X-Tributary-Signature"] ?? request.headers["x-tributary-signature"] else { return false }
        var t: String?, v1: String?
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { return false }
            if pair[0] == "t" { t = pair[1] } else if pair[0] == "v1" { v1 = pair[1] }
        }
        guard let t, let seconds = Double(t), abs(Date().timeIntervalSince1970 - seconds) <= tolerance, let v1 else { return false }
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(t).".utf8) + request.body, using: SymmetricKey(data: Array(secret.utf8)))
        return Array(mac).map { String(format: "%02x", $0) }.joined() == v1
    }
}
