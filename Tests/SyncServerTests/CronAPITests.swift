import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import SyncCore
import TestSupport

/// `schedule.cron` through the API: shown with its next run, refused by field when wrong.
@Suite("Cron schedules in the API")
struct CronAPITests {
    @Test func aCronScheduleIsCheckedShownAndReplaced() async throws {
        try await TestNode().test { client in
            let created = try await client.call(.post, "/v1/sources", #"""
                {"name": "c", "kind": "synthetic", "config": {"records": 1},
                 "schedule": {"cron": "*/15  * * * *", "timezone": "Europe/Berlin", "jitter_seconds": 30, "missed": "skip"}}
                """#)
            #expect(created.status == .created, "\(String(buffer: created.body))")
            #expect(created.json["schedule"] == .object(["cron": .string("*/15 * * * *"), "timezone": .string("Europe/Berlin"),
                                                         "jitter_seconds": .number(30), "missed": .string("skip")]))
            let next = try #require(created.json["next_run_at"]?.stringValue.flatMap(Timestamp.parse))
            #expect(next.timeIntervalSinceNow > 0 && next.timeIntervalSinceNow <= 15 * 60)
            #expect(created.json["skipped_slots"] == .number(0))
            for (schedule, field) in [
                (#"{"cron": "61 * * * *"}"#, "schedule.cron"), (#"{"cron": "* * *"}"#, "schedule.cron"), (#"{"cron": 5}"#, "schedule.cron"),
                (#"{"cron": "0 0 30 2 *"}"#, "schedule.cron"), (#"{"cron": "* * * * *", "timezone": "Mars/Olympus"}"#, "schedule.timezone"),
                (#"{"cron": "* * * * *", "jitter_seconds": -1}"#, "schedule.jitter_seconds"),
                (#"{"cron": "* * * * *", "missed": "all"}"#, "schedule.missed"),
                (#"{"cron": "* * * * *", "every_seconds": 60}"#, "schedule.every_seconds"),
            ] + [#"Europe/Berlin\u0000"#, #"Europe/Berlin\u0000x"#, #"\u0000"#, " Europe/Berlin", "Europe/Berlin ", "Europe//Berlin",
                 "Europe/../Europe/Berlin", "../../etc/localtime", "/etc/localtime", "posixrules", "", "Europe/Berlin/"].map { zone in
                (#"{"cron": "* * * * *", "timezone": "\#(zone)"}"#, "schedule.timezone")
            } {
                let r = try await client.call(.patch, "/v1/sources/c", #"{"schedule": \#(schedule)}"#)
                #expect(r.status == .unprocessableContent && r.json["errors"]?.arrayValue?.first?["field"]?.stringValue == field,
                        "\(schedule): \(String(buffer: r.body))")
            }
            // Replaced by every_seconds: no cron, next run from the interval.
            let every = try await client.call(.patch, "/v1/sources/c", #"{"schedule": {"every_seconds": 3600}}"#)
            #expect(every.json["schedule"] == .object(["every_seconds": .number(3600)]))
            let back = try await client.call(.patch, "/v1/sources/c", #"{"schedule": {"cron": "0 9 * * MON"}}"#)
            #expect(back.json["schedule"]?["timezone"] == .string("UTC"))
            #expect(back.json["schedule"]?["missed"] == .string("one"))
            #expect(back.json["next_run_at"]?.stringValue?.hasSuffix("T09:00:00.000Z") == true)
        }
    }
}
