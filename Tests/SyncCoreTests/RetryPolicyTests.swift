import Foundation
import Testing
import SyncCore

@Suite("Retry policy")
struct RetryPolicyTests {
    let policy = RetryPolicy(maxAttempts: 5, initialDelaySeconds: 2, maxDelaySeconds: 30, multiplier: 2)

    @Test func capGrowsExponentiallyAndIsCapped() {
        #expect((1...6).map { policy.cap(afterFailedAttempts: $0) } == [2, 4, 8, 16, 30, 30])
    }

    @Test func fullJitterSpansZeroToTheCap() {
        #expect(policy.delay(afterFailedAttempts: 3, random: { 0 }) == 0)
        #expect(policy.delay(afterFailedAttempts: 3, random: { 0.5 }) == 4)
        #expect(policy.delay(afterFailedAttempts: 3, random: { 0.999 }) < 8)
        for _ in 0..<1000 {
            let d = policy.delay(afterFailedAttempts: 4)
            #expect(d >= 0 && d <= 16)
        }
    }

    @Test func retryAfterIsAFloor() {
        #expect(policy.delay(afterFailedAttempts: 1, retryAfter: 10, random: { 0.1 }) == 10)
        #expect(policy.delay(afterFailedAttempts: 5, retryAfter: 1, random: { 0.5 }) == 15)
    }

    @Test func hugeExponentsStayFinite() {
        let wild = RetryPolicy(maxAttempts: 100, initialDelaySeconds: 1, maxDelaySeconds: 60, multiplier: 100)
        #expect(wild.cap(afterFailedAttempts: 99) == 60)
    }

    @Test func decodingFillsDefaultsAndValidationNamesFields() throws {
        let decoded = try JSONDecoder().decode(RetryPolicy.self, from: Data(#"{"max_attempts": 3}"#.utf8))
        #expect(decoded.maxAttempts == 3)
        #expect(decoded.initialDelaySeconds == RetryPolicy.default.initialDelaySeconds)
        let bad = RetryPolicy(maxAttempts: 0, initialDelaySeconds: -1, maxDelaySeconds: 1, multiplier: 0.5)
        #expect(Set(bad.validationErrors().map(\.field)) == ["retry.max_attempts", "retry.initial_delay_seconds", "retry.multiplier"])
    }
}

@Suite("Hostile numbers from outside")
struct HostileNumberTests {
    let policy = RetryPolicy(maxAttempts: 5, initialDelaySeconds: 2, maxDelaySeconds: 30, multiplier: 2)

    @Test(arguments: [Double.infinity, 1e12, 604_800, Double.nan, -5, -Double.infinity])
    func aRetryWaitsAtMostMaxDelayWhateverRetryAfterSays(_ retryAfter: Double) {
        let d = policy.delay(afterFailedAttempts: 1, retryAfter: retryAfter, random: { 0.5 })
        #expect(d.isFinite)
        #expect(d >= 0 && d <= 30)
    }

    @Test(arguments: [Double.infinity, -Double.infinity, Double.nan, 1e300, -1e300, 1e12 * 365 * 86_400])
    func anyDateFormatsWithoutTrapping(_ seconds: Double) {
        let text = Timestamp.format(Date(timeIntervalSince1970: seconds))
        #expect(text.count == 24, "\(text)")
        #expect(Timestamp.parse(text) != nil, "\(text)")
    }
}
