extension Duration {
    /// The duration in seconds, as a `Double`.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension Duration {
    /// `seconds` as a duration, clamped to `0...limit` (NaN counts as 0): for waits computed
    /// from values that came from outside (headers, stored times). Never a conversion that traps.
    public static func clamped(seconds: Double, upTo limit: Double = 31_536_000) -> Duration {
        let s = seconds.isNaN ? 0 : Swift.min(Swift.max(seconds, 0), limit)
        return .nanoseconds(Int64((s * 1e9).rounded()))
    }
}

extension Int {
    /// `value` rounded toward zero and clamped to `range` (NaN gives the lower bound): for
    /// numbers that came from outside. `Int(someDouble)` traps on infinities and out-of-range
    /// values; this never does.
    public init(clamping value: Double, to range: ClosedRange<Int>) {
        if value.isNaN || value <= Double(range.lowerBound) {
            self = range.lowerBound
        } else if value >= Double(range.upperBound) {
            self = range.upperBound
        } else {
            self = Int(value)
        }
    }
}

extension Int {
    /// `self + other`, held at `Int.max` / `Int.min` instead of trapping: for totals summed from
    /// stored values (a damaged row must not take a route down).
    public func addingSaturated(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}
