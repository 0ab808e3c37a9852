import Foundation
import SyncCore

/// Asks an OAuth2 token endpoint (RFC 6749 §4.4, §6) for an access token: the
/// `client_credentials` grant, or the `refresh_token` grant with the stored refresh token.
/// One request, under the node's egress policy and within the timeout; the credential's
/// own authorization is never sent here (this is another origin's business).
public struct OAuth2TokenEndpoint: Sendable {
    let client: UpstreamClient
    public let timeoutSeconds: Double

    public init(client: UpstreamClient, timeoutSeconds: Double = 20) {
        self.client = client
        self.timeoutSeconds = timeoutSeconds
    }

    /// The endpoint refused the credential itself (`invalid_grant`, `invalid_client`,
    /// `unauthorized_client`): only new secrets can mend it.
    public struct Refused: Error, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// A new access token for `credential`. Throws ``Refused`` when the credential itself is
    /// refused, a retryable ``SyncError`` when the endpoint could not answer (a timeout, a
    /// `5xx`, a `429`), and a non-retryable one for any other answer.
    public func requestToken(for credential: Credential, now: Date = Date()) async throws -> IssuedToken {
        guard let raw = credential.text("token_url"), let url = HTTPURL.parse(raw) else {
            throw SyncError(.configInvalid, "credential \(credential.name) has no usable token_url", retryable: false)
        }
        var form: [(String, String)] = []
        switch credential.type {
        case .oauth2RefreshToken:
            form.append(("grant_type", "refresh_token"))
            form.append(("refresh_token", credential.secrets["refresh_token"] ?? ""))
        default:
            form.append(("grant_type", "client_credentials"))
        }
        if let scopes = credential.fields["scopes"]?.arrayValue?.compactMap(\.stringValue), !scopes.isEmpty {
            form.append(("scope", scopes.joined(separator: " ")))
        }
        if let audience = credential.text("audience") { form.append(("audience", audience)) }
        for (name, value) in (credential.fields["extra_params"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let text = value.stringValue { form.append((name, text)) }
        }
        var headers: [(String, String)] = []
        let clientID = credential.text("client_id") ?? ""
        let secret = credential.secrets["client_secret"]
        if credential.text("client_auth") == "body" || secret == nil {
            form.append(("client_id", clientID))
            if let secret { form.append(("client_secret", secret)) }
        } else if let secret {
            // RFC 6749 §2.3.1: each part form-encoded before the two are joined.
            let pair = QueryString.encode(clientID) + ":" + QueryString.encode(secret)
            headers.append(("Authorization", "Basic " + Data(pair.utf8).base64EncodedString()))
        }
        let response = try await client.postForm(url, form: form, headers: headers, timeout: timeoutSeconds)
        // What the endpoint may echo back of what it was sent: never shown.
        let sent = Array(credential.secrets.values) + headers.map { String($0.1.drop { $0 != " " }.dropFirst()) }
        return try Self.token(from: response, credential: credential, secrets: sent, now: now)
    }

    /// Reads the endpoint's answer.
    static func token(from response: UpstreamClient.Response, credential: Credential, secrets: [String], now: Date) throws -> IssuedToken {
        let body = try? JSONDecoder().decode(JSONValue.self, from: Data(response.body))
        let object = body?.objectValue ?? [:]
        guard (200..<300).contains(response.status) else {
            let code = object["error"]?.stringValue.map { String($0.prefix(100)) }
            let description = object["error_description"]?.stringValue.map { String($0.prefix(300)) }
            let said = [code, description].compactMap { $0 }.joined(separator: ": ")
            let reason = SecretRedaction.mask(SecretRedaction.redactText(LogText.clean(
                "the token endpoint answered HTTP \(response.status)" + (said.isEmpty ? "" : " (\(said))"))), values: secrets)
            // The credential itself refused: only by a client error (a 429 or 5xx saying
            // invalid_grant is a proxy's or an overloaded endpoint's word, not the grant's).
            let clientError = (400..<500).contains(response.status) && response.status != 429 && response.status != 408
            if clientError, ["invalid_grant", "invalid_client", "unauthorized_client"].contains(code ?? "") {
                throw Refused(reason: reason)
            }
            let retryable = response.status == 429 || response.status == 408 || response.status >= 500
            // Retry-After of a busy endpoint: the attempt's request retries wait at least that long.
            throw SyncError(retryable ? .upstreamUnavailable : .upstreamAuthFailed, reason, retryable: retryable,
                            retryAfterSeconds: retryable ? UpstreamClient.retryAfter(response.headers.first(name: "retry-after")) : nil)
        }
        guard let token = object["access_token"]?.stringValue, !token.isEmpty, token.utf8.count <= 16_384,
              token.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw SyncErrorFactory.invalidResponse("the token endpoint's answer has no usable access_token", status: response.status)
        }
        if let type = object["token_type"]?.stringValue, type.lowercased() != "bearer" {
            throw SyncErrorFactory.invalidResponse("the token endpoint issued a \(String(type.prefix(40))) token; only bearer tokens are supported",
                                                   status: response.status)
        }
        // A lifetime from outside: a finite number of seconds, kept within a second and a year.
        var expiresAt: Date?
        if let seconds = object["expires_in"]?.doubleValue ?? object["expires_in"]?.stringValue.flatMap(Double.init), seconds.isFinite {
            expiresAt = now.addingTimeInterval(min(max(seconds, 1), 31_536_000))
        }
        var rotated: String?
        if let next = object["refresh_token"]?.stringValue {
            // A rotated token is stored and sent on the next refresh: the same rule as the access token.
            guard !next.isEmpty, next.utf8.count <= 16_384, next != SecretRedaction.maskText, next.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw SyncErrorFactory.invalidResponse("the token endpoint's answer has an unusable refresh_token", status: response.status)
            }
            rotated = next
        }
        return IssuedToken(accessToken: token, expiresAt: expiresAt, refreshToken: credential.type == .oauth2RefreshToken ? rotated : nil)
    }
}
