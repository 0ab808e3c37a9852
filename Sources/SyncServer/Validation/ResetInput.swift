import SyncCore

/// The body of `POST /v1/sources/{id}/reset`: `state` (clear the saved state, the
/// incremental cursor; default true) and `records` (mark every live record deleted;
/// default false). At least one must be true.
struct ResetInput {
    var state: Bool
    var records: Bool

    static func parse(_ bytes: [UInt8]) throws -> ResetInput {
        let body = try RequestBody.object(bytes, allowEmpty: true)
        var errors: [FieldError] = []
        for key in body.keys where key != "state" && key != "records" { errors.append(FieldError(key, "unknown field")) }
        var input = ResetInput(state: true, records: false)
        if let v = body["state"] {
            if case .bool(let b) = v { input.state = b } else { errors.append(FieldError("state", "must be true or false")) }
        }
        if let v = body["records"] {
            if case .bool(let b) = v { input.records = b } else { errors.append(FieldError("records", "must be true or false")) }
        }
        if errors.isEmpty, !input.state, !input.records {
            errors.append(FieldError("state", "state or records must be true: a reset of nothing"))
        }
        guard errors.isEmpty else { throw Problem.validation(errors) }
        return input
    }
}
