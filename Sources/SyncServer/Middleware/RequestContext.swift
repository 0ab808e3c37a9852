import Hummingbird

/// The request context of the API: Hummingbird's core storage plus the caller's role.
public struct TributaryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The authenticated role, or `nil` when authentication is off (no tokens configured).
    public var role: TokenRole?
    /// The id echoed in `X-Request-Id` and in `internal` problems.
    public var requestID: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}
