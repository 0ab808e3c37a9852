import Hummingbird
import NIOCore

/// The request context of the API: Hummingbird's core storage plus the caller's role.
public struct TributaryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The authenticated role, or `nil` when authentication is off (no tokens configured).
    public var role: TokenRole?
    /// The id echoed in `X-Request-Id` and in `internal` problems.
    public var requestID: String?
    /// The connection (event streams watch it for the client hanging up).
    public let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
