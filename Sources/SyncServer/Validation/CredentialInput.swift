import Foundation
import SyncConnectors
import SyncCore

/// Reads and validates a credential from a request body (create or patch), collecting every
/// problem with its field path (docs/credentials.md).
enum CredentialInput {
    static let longestSecret = 16_384

    /// A new credential from a `POST /v1/credentials` body.
    static func create(_ body: JSONObject, now: Date) throws(Problem) -> Credential {
        var errors: [FieldError] = []
        let type = body["type"].flatMap { $0.stringValue.flatMap(CredentialType.init(rawValue:)) }
        if type == nil {
            errors.append(FieldError("type", "must be one of: \(CredentialType.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        if body["name"] == nil { errors.append(FieldError("name", "is required")) }
        if body["config"] == nil { errors.append(FieldError("config", "is required")) }
        var credential = Credential(id: "cred_" + Identifier.make("crd", now: now).dropFirst(4), name: "", type: type ?? .bearer,
                                    createdAt: now, updatedAt: now)
        if let type, let config = body["config"]?.objectValue {
            for secret in type.secretFields where config[secret] == .string(SecretRedaction.maskText) {
                errors.append(FieldError("config.\(secret)", "holds \"***\", the mask of a secret; send the secret itself"))
            }
            for (name, value) in (config["extra_params"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) where value == SecretRedaction.mask {
                errors.append(FieldError("config.extra_params.\(name)", "holds \"***\", the mask of a secret; send the value itself"))
            }
        }
        apply(body, to: &credential, errors: &errors)
        guard errors.isEmpty else { throw Problem.validation(errors) }
        try complete(credential)
        return credential
    }

    /// `existing` with a `PATCH` body applied: a secret sent as `"***"` keeps what is stored,
    /// `null` removes an optional field. `changed` says whether anything the credential
    /// authenticates with changed (then it is active again and its cached token is dropped).
    static func patch(_ existing: Credential, with body: JSONObject, now: Date) throws(Problem) -> (credential: Credential, changed: Bool) {
        var errors: [FieldError] = []
        if let type = body["type"], type != .string(existing.type.rawValue) {
            errors.append(FieldError("type", "cannot change (it is \(existing.type.rawValue)); create another credential"))
        }
        var credential = existing
        var body = body
        if var config = body["config"]?.objectValue {
            for secret in existing.type.secretFields where config[secret] == .string(SecretRedaction.maskText) {
                config.removeValue(forKey: secret)
            }
            if let extra = config["extra_params"]?.objectValue {
                config["extra_params"] = .object(SecretRedaction.merge(existing.fields["extra_params"]?.objectValue ?? [:], patch: extra))
            }
            body["config"] = .object(config)
        }
        apply(body, to: &credential, errors: &errors)
        guard errors.isEmpty else { throw Problem.validation(errors) }
        try complete(credential)
        credential.updatedAt = now
        return (credential, credential.secrets != existing.secrets || credential.fields != existing.fields)
    }

    private static func apply(_ body: JSONObject, to credential: inout Credential, errors: inout [FieldError]) {
        for key in body.keys.sorted() where !["name", "type", "config"].contains(key) {
            errors.append(FieldError(key, "unknown field"))
        }
        if let v = body["name"] {
            if let name = v.stringValue, CredentialName.isValid(name) { credential.name = name }
            else { errors.append(FieldError("name", "must be 1–100 characters of A-Z a-z 0-9 . _ -, and not shaped like an id")) }
        }
        guard let v = body["config"] else { return }
        guard let config = v.objectValue else {
            errors.append(FieldError("config", "must be an object, got \(v.typeName)"))
            return
        }
        let type = credential.type
        let known = Set(type.plainFields + type.secretFields)
        for key in config.keys.sorted() where !known.contains(key) {
            errors.append(FieldError("config.\(key)", "unknown field for a \(type.rawValue) credential (it takes \((type.plainFields + type.secretFields).joined(separator: ", ")))"))
        }
        for field in type.secretFields {
            guard let v = config[field] else { continue }
            if v.isNull { credential.secrets.removeValue(forKey: field); continue }
            if let text = v.stringValue, let problem = secretProblem(text) { errors.append(FieldError("config.\(field)", problem)) }
            else if let text = v.stringValue { credential.secrets[field] = text }
            else { errors.append(FieldError("config.\(field)", "must be a string, got \(v.typeName)")) }
        }
        for field in type.plainFields {
            guard let v = config[field] else { continue }
            if v.isNull { credential.fields.removeValue(forKey: field); continue }
            if let value = plain(field, v, type: type, errors: &errors) { credential.fields[field] = value }
        }
    }

    /// A secret goes into a header or a form: printable, no line breaks, bounded.
    static func secretProblem(_ text: String) -> String? {
        if text.isEmpty { return "must not be empty" }
        if text.utf8.count > longestSecret { return "must be at most \(longestSecret) bytes" }
        if text.unicodeScalars.contains(where: LogText.isUnsafe) {
            return "must not contain control characters (line breaks, tabs, NUL, C1 controls, line separators, direction overrides)"
        }
        return nil
    }

    /// Header names a credential may not set: HTTP's own framing and routing, which the
    /// client sets (or drops) itself.
    static let reservedHeaders: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
        "proxy-authorization", "proxy-connection", "expect", "content-type", "accept-encoding",
    ]

    private static func plain(_ field: String, _ v: JSONValue, type: CredentialType, errors: inout [FieldError]) -> JSONValue? {
        func fail(_ message: String) -> JSONValue? { errors.append(FieldError("config.\(field)", message)); return nil }
        func text(max: Int) -> String? {
            guard let s = v.stringValue, !s.isEmpty, s.utf8.count <= max, !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return nil }
            return s
        }
        switch field {
        case "username":
            guard let s = v.stringValue, s.utf8.count <= 1000, !s.contains(":"),
                  !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                return fail("must be a string of at most 1000 bytes without \":\" or control characters")
            }
            return .string(s)
        case "in":
            guard let s = v.stringValue, s == "header" || s == "query" else { return fail("must be header or query") }
            return .string(s)
        case "name":
            guard let s = text(max: 200) else { return fail("must be a string of 1 to 200 bytes without control characters") }
            return .string(s)
        case "token_url":
            guard let s = v.stringValue, s.utf8.count <= 2048, let url = HTTPURL.parse(s), url.user == nil, url.fragment == nil else {
                return fail("must be an absolute http or https URL without user info or fragment")
            }
            // It is shown as it is: a secret in its query would be shown with it.
            guard SecretRedaction.redactURL(s) == s else {
                return fail("must not carry a secret in its query; give it as client_secret or in extra_params")
            }
            return .string(s)
        case "client_id", "audience":
            guard let s = text(max: 1000) else { return fail("must be a string of 1 to 1000 bytes without control characters") }
            return .string(s)
        case "scopes":
            let list: [String]?
            if let s = v.stringValue { list = s.split(separator: " ").map(String.init) }
            else { list = v.arrayValue.map { $0.compactMap(\.stringValue) }.flatMap { $0.count == v.arrayValue?.count ? $0 : nil } }
            guard let list, list.count <= 100, list.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 500 && $0.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "\\" } }) else {
                return fail("must be an array of at most 100 scope tokens (printable ASCII, no spaces), or one space-separated string")
            }
            return .array(list.map(JSONValue.string))
        case "client_auth":
            guard let s = v.stringValue, s == "basic" || s == "body" else { return fail("must be basic (HTTP Basic) or body (in the form)") }
            return .string(s)
        case "extra_params":
            guard let o = v.objectValue, o.count <= 50 else { return fail("must be an object of at most 50 string members") }
            let reserved: Set<String> = ["grant_type", "refresh_token", "client_id", "client_secret", "scope", "audience"]
            var out = JSONObject()
            for (name, value) in o.sorted(by: { $0.key < $1.key }) {
                if reserved.contains(name) { errors.append(FieldError("config.extra_params.\(name)", "is set by Tributary; use the credential's own field")); continue }
                guard !name.isEmpty, name.utf8.count <= 200, let s = value.stringValue, secretProblem(s) == nil || s.isEmpty else {
                    errors.append(FieldError("config.extra_params.\(name)", "must be a string of at most \(longestSecret) bytes without control characters"))
                    continue
                }
                out[name] = .string(s)
            }
            return .object(out)
        default:
            return fail("unknown field")
        }
    }

    /// What each type cannot do without.
    private static func complete(_ credential: Credential) throws(Problem) {
        var errors: [FieldError] = []
        for secret in credential.type.requiredSecrets where credential.secrets[secret] == nil {
            errors.append(FieldError("config.\(secret)", "is required for a \(credential.type.rawValue) credential"))
        }
        switch credential.type {
        case .apiKey:
            if credential.text("name") == nil { errors.append(FieldError("config.name", "is required (the header or query parameter that carries the key)")) }
            if credential.text("in") != "query", let name = credential.text("name") {
                if !HeaderName.isValid(name) {
                    errors.append(FieldError("config.name", "must be an HTTP header name (a token: letters, digits and !#$%&'*+-.^_`|~)"))
                } else if reservedHeaders.contains(name.lowercased()) {
                    errors.append(FieldError("config.name", "names a header HTTP itself sets (\(name)); an API key goes in another header"))
                }
            }
        case .oauth2ClientCredentials, .oauth2RefreshToken:
            if credential.text("token_url") == nil { errors.append(FieldError("config.token_url", "is required")) }
            if credential.text("client_id") == nil { errors.append(FieldError("config.client_id", "is required")) }
        case .bearer, .basic:
            break
        }
        if !errors.isEmpty { throw Problem.validation(errors) }
    }
}

/// RFC 9110 §5.1 field names: a token (of at most 200 bytes here).
enum HeaderName {
    static func isValid(_ name: String) -> Bool { name.utf8.count <= 200 && HTTPToken.isToken(name) }
}
