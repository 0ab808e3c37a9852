/// A token bucket for requests to the upstream.
public struct RateLimit: Sendable, Codable, Equatable {
    public var requestsPerSecond: Double
    public var burst: Int
    /// The budget's name: every source naming it shares one budget across the cluster
    /// (`nil`: the source's own).
    public var key: String?
    public init(requestsPerSecond: Double, burst: Int, key: String? = nil) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
        self.key = key
    }
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case requestsPerSecond = "requests_per_second"
        case burst
        case key
    }
}
