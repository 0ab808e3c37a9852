import Foundation

/// A five-field cron expression (`minute hour day-of-month month day-of-week`) evaluated in a
/// time zone (docs/queue.md, "Cron schedules").
///
/// Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists of those;
/// months and weekdays also take names (`JAN`, `MON`); weekday 0 and 7 are Sunday. As in
/// Vixie cron, when both day fields are restricted a day matching either one matches.
///
/// Time changes follow the time zone database: a local time that does not exist (the hour a
/// spring-forward skips) has no slot; a local time that happens twice (the hour a fall-back
/// repeats) has one slot, at its first occurrence, unless the hour field is `*`, in which
/// case both occurrences are slots (every N minutes stays every N minutes).
public struct CronExpression: Sendable, Equatable {
    public let text: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let dayOfMonthRestricted: Bool
    let weekdayRestricted: Bool
    let hourWildcard: Bool

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    public init(_ text: String) throws(ParseError) {
        guard text.utf8.count <= 200 else { throw ParseError(description: "is longer than 200 characters") }
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(description: "needs five fields (minute hour day-of-month month day-of-week), got \(fields.count)")
        }
        self.text = fields.joined(separator: " ")
        minutes = try Self.field(fields[0], "minute", 0...59, names: [])
        hours = try Self.field(fields[1], "hour", 0...23, names: [])
        daysOfMonth = try Self.field(fields[2], "day-of-month", 1...31, names: [])
        months = try Self.field(fields[3], "month", 1...12, names: Self.monthNames, nameBase: 1)
        let days = try Self.field(fields[4], "day-of-week", 0...7, names: Self.dayNames)
        weekdays = Set(days.map { $0 % 7 })
        dayOfMonthRestricted = fields[2] != "*"
        weekdayRestricted = fields[4] != "*"
        hourWildcard = fields[1] == "*"
    }

    static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>, names: [String], nameBase: Int = 0) throws(ParseError) -> Set<Int> {
        var out = Set<Int>()
        func value(_ s: Substring) throws(ParseError) -> Int {
            if let n = Int(s), range.contains(n) { return n }
            if let i = names.firstIndex(of: s.uppercased()) { return i + nameBase }
            throw ParseError(description: "\(name) \"\(s)\" is not in \(range.lowerBound)-\(range.upperBound)")
        }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s >= 1, s <= range.upperBound + 1 else {
                    throw ParseError(description: "\(name) step \"\(pieces[1])\" is not a number from 1 to \(range.upperBound + 1)")
                }
                step = s
            }
            let base = pieces[0]
            var low = range.lowerBound, high = range.upperBound
            if base == "*" {
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw ParseError(description: "\(name) range \"\(base)\" runs backwards") }
            } else {
                low = try value(base)
                high = pieces.count == 2 ? range.upperBound : low
            }
            out.formUnion(stride(from: low, through: high, by: step))
        }
        return out
    }

    func dayMatches(day: Int, weekday: Int) -> Bool {
        switch (dayOfMonthRestricted, weekdayRestricted) {
        case (true, true): daysOfMonth.contains(day) || weekdays.contains(weekday)
        case (true, false): daysOfMonth.contains(day)
        case (false, true): weekdays.contains(weekday)
        case (false, false): true
        }
    }

    /// The first slot strictly after `date` in `zone`, or `nil` if there is none within
    /// eight years (`0 0 30 2 *` never comes).
    public func next(after date: Date, in zone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        var t = (date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60
        let limit = date.timeIntervalSince1970 + 8 * 366 * 86_400
        while t <= limit {
            let instant = Date(timeIntervalSince1970: t)
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .weekday], from: instant)
            guard let year = c.year, let month = c.month, let day = c.day, let hour = c.hour, let minute = c.minute, let weekday = c.weekday else { return nil }
            if !months.contains(month) {
                guard let first = calendar.date(from: DateComponents(year: year, month: month + 1, day: 1)) else { return nil }
                t = max(t + 60, first.timeIntervalSince1970)
                continue
            }
            if !dayMatches(day: day, weekday: weekday - 1) {
                let start = calendar.startOfDay(for: instant)
                guard let following = calendar.date(byAdding: .day, value: 1, to: start) else { return nil }
                t = max(t + 60, following.timeIntervalSince1970)
                continue
            }
            if !hours.contains(hour) {
                t += Double(60 - minute) * 60
                continue
            }
            if !minutes.contains(minute) {
                t += 60
                continue
            }
            // The second occurrence of a repeated local time is a slot only for `*` hours.
            if !hourWildcard {
                let hourEarlier = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: instant.addingTimeInterval(-3600))
                if hourEarlier.year == year && hourEarlier.month == month && hourEarlier.day == day && hourEarlier.hour == hour && hourEarlier.minute == minute {
                    t += 60
                    continue
                }
            }
            return instant
        }
        return nil
    }
}
