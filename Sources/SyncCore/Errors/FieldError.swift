/// One invalid field of a request: `field` is a dotted path (`config.pagination.type`).
public struct FieldError: Sendable, Codable, Equatable {
    public var field: String
    public var message: String
    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }
}
