import Foundation
import Testing
@testable import SyncCore

/// Cron expressions: fields, names, day rules, and the two days a year the clock jumps.
@Suite("Cron expressions")
struct CronExpressionTests {
    let utc = TimeZone(identifier: "UTC")!
    let berlin = TimeZone(identifier: "Europe/Berlin")!

    func at(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }
    func slots(_ spec: String, after start: String, in zone: TimeZone, count: Int) throws -> [String] {
        let cron = try CronExpression(spec)
        var out: [String] = [], t = at(start)
        let f = ISO8601DateFormatter()
        for _ in 0..<count {
            guard let next = cron.next(after: t, in: zone) else { break }
            out.append(f.string(from: next))
            t = next
        }
        return out
    }

    @Test func everyFifteenMinutesAndNames() throws {
        #expect(try slots("*/15 * * * *", after: "2026-11-26T10:07:30Z", in: utc, count: 3)
                == ["2026-11-26T10:15:00Z", "2026-11-26T10:30:00Z", "2026-11-26T10:45:00Z"])
        // Strictly after: a slot time itself is not its own next.
        #expect(try slots("*/15 * * * *", after: "2026-11-26T10:15:00Z", in: utc, count: 1) == ["2026-11-26T10:30:00Z"])
        // 2026-11-27 is a Friday: the next weekday 09:00 after Friday noon is Monday.
        #expect(try slots("0 9 * * MON-FRI", after: "2026-11-27T12:00:00Z", in: utc, count: 2) == ["2026-11-30T09:00:00Z", "2026-12-01T09:00:00Z"])
        #expect(try slots("0 0 1 jan *", after: "2026-11-26T00:00:00Z", in: utc, count: 1) == ["2027-01-01T00:00:00Z"])
        // Both day fields restricted: either matches (the 1st, and every Sunday).
        #expect(try slots("0 0 1 * 0", after: "2026-11-26T00:00:00Z", in: utc, count: 3)
                == ["2026-11-29T00:00:00Z", "2026-12-01T00:00:00Z", "2026-12-06T00:00:00Z"])
        #expect(try slots("5 4 * * 7", after: "2026-11-26T00:00:00Z", in: utc, count: 1) == ["2026-11-29T04:05:00Z"])
        #expect(try slots("0 12 29 2 *", after: "2026-11-26T00:00:00Z", in: utc, count: 1) == ["2028-02-29T12:00:00Z"])
        #expect(try CronExpression("0 0 30 2 *").next(after: at("2026-11-26T00:00:00Z"), in: utc) == nil)
    }

    @Test(arguments: ["61 * * * *", "* * *", "* * * * * *", "*/0 * * * *", "5-1 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
                      "* * * * 8", "a * * * *", "", "1,,2 * * * *", "-1 * * * *", "*/1000 * * * *"])
    func nonsenseIsRefused(_ spec: String) {
        #expect(throws: CronExpression.ParseError.self) { _ = try CronExpression(spec) }
    }

    /// 2026-03-29, Europe/Berlin: 02:00 CET becomes 03:00 CEST. 02:30 does not exist that day.
    @Test func springForwardHasNoSlotInTheSkippedHour() throws {
        #expect(try slots("30 2 * * *", after: "2026-03-28T00:00:00Z", in: berlin, count: 3)
                == ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"])
        // Every 30 minutes goes on in elapsed time: 01:30 CET, then 03:00 CEST.
        #expect(try slots("*/30 * * * *", after: "2026-03-29T00:15:00Z", in: berlin, count: 3)
                == ["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"])
    }

    /// 2026-10-25, Europe/Berlin: 03:00 CEST becomes 02:00 CET. 02:30 happens twice.
    @Test func fallBackRunsAFixedTimeOnceAndWildcardHoursTwice() throws {
        #expect(try slots("30 2 * * *", after: "2026-10-24T12:00:00Z", in: berlin, count: 2)
                == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])
        #expect(try slots("*/30 * * * *", after: "2026-10-24T23:45:00Z", in: berlin, count: 5)
                == ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"])
    }
}
