/// How often and how patiently a failed sync is retried.
///
/// Delays grow exponentially (`initial * multiplier^(n-1)`), are capped at
/// `maxDelaySeconds`, and use *full jitter*: the actual delay is uniform in
/// `[0, cap]`, so that many syncs failing together do not retry together.
/// A `Retry-After` from the upstream is a floor, but never past `maxDelaySeconds`:
/// whatever an upstream asks for, a retry waits at most that long.
public struct RetryPolicy: Sendable, Codable, Equatable {
    public var maxAttempts: Int
    public var initialDelaySeconds: Double
    public var maxDelaySeconds: Double
    public var multiplier: Double

    public static let `default` = RetryPolicy(maxAttempts: 5, initialDelaySeconds: 2, maxDelaySeconds: 300, multiplier: 2)

    public init(maxAttempts: Int, initialDelaySeconds: Double, maxDelaySeconds: Double, multiplier: Double) {
        self.maxAttempts = maxAttempts
        self.initialDelaySeconds = initialDelaySeconds
        self.maxDelaySeconds = maxDelaySeconds
        self.multiplier = multiplier
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case maxAttempts = "max_attempts"
        case initialDelaySeconds = "initial_delay_seconds"
        case maxDelaySeconds = "max_delay_seconds"
        case multiplier
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RetryPolicy.default
        maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? d.maxAttempts
        initialDelaySeconds = try c.decodeIfPresent(Double.self, forKey: .initialDelaySeconds) ?? d.initialDelaySeconds
        maxDelaySeconds = try c.decodeIfPresent(Double.self, forKey: .maxDelaySeconds) ?? d.maxDelaySeconds
        multiplier = try c.decodeIfPresent(Double.self, forKey: .multiplier) ?? d.multiplier
    }

    /// Problems with the policy, as `(field, message)` pairs; empty when valid.
    public func validationErrors(prefix: String = "retry") -> [FieldError] {
        var errors: [FieldError] = []
        if !(1...100).contains(maxAttempts) { errors.append(.init("\(prefix).max_attempts", "must be between 1 and 100")) }
        if !(initialDelaySeconds >= 0 && initialDelaySeconds <= 86_400) { errors.append(.init("\(prefix).initial_delay_seconds", "must be between 0 and 86400")) }
        if !(maxDelaySeconds >= 0 && maxDelaySeconds <= 604_800) { errors.append(.init("\(prefix).max_delay_seconds", "must be between 0 and 604800")) }
        if !(multiplier >= 1 && multiplier <= 100) { errors.append(.init("\(prefix).multiplier", "must be between 1 and 100")) }
        return errors
    }

    /// The upper bound of the delay before retry number `failedAttempts` (1-based):
    /// exponential growth, capped.
    public func cap(afterFailedAttempts failedAttempts: Int) -> Double {
        let exponent = Double(max(0, failedAttempts - 1))
        let raw = initialDelaySeconds * pow(multiplier, exponent)
        return min(maxDelaySeconds, raw.isFinite ? raw : maxDelaySeconds)
    }

    /// The delay before the next attempt after `failedAttempts` failures, with full jitter.
    /// - Parameters:
    ///   - failedAttempts: how many attempts have failed so far (1 after the first failure).
    ///   - retryAfter: the upstream's `Retry-After`, used as a floor up to `maxDelaySeconds`
    ///     (a negative, NaN or infinite value is ignored).
    ///   - random: a source of uniform numbers in `[0, 1)`; injectable for tests.
    /// - Returns: seconds in `0...maxDelaySeconds`.
    public func delay(afterFailedAttempts failedAttempts: Int, retryAfter: Double? = nil, random: () -> Double = { Double.random(in: 0..<1) }) -> Double {
        let jittered = cap(afterFailedAttempts: failedAttempts) * random()
        let floor = retryAfter.flatMap { $0.isFinite && $0 > 0 ? $0 : nil } ?? 0
        let bound = maxDelaySeconds.isFinite ? max(0, maxDelaySeconds) : RetryPolicy.default.maxDelaySeconds
        let delay = max(jittered.isFinite ? jittered : bound, floor)
        return min(delay, bound)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
