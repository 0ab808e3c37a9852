import Foundation
import Synchronization
import Testing
import SyncCore
import SyncEngine
import SyncStore
import TestSupport

/// Cron schedules over a simulated clock (docs/queue.md, "Cron schedules"): three schedulers
/// (three nodes, each with a store of its own on one database) take each slot once; a busy slot is skipped and counted;
/// after downtime `skip` runs nothing and `one` runs one catch-up sync; DST days in a zone.
@Suite("Cron schedules")
struct CronSchedulerTests {
    final class Clock: Sendable {
        let now: Mutex<Date>
        init(_ start: Date) { now = Mutex(start) }
        func set(_ date: Date) { now.withLock { $0 = date } }
        var read: @Sendable () -> Date { { self.now.withLock { $0 } } }
    }

    func at(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    /// Three schedulers tick at once; returns the syncs they queued together.
    func tickAll(_ schedulers: [Scheduler]) async throws -> [String] {
        try await withThrowingTaskGroup(of: [String].self) { group in
            for s in schedulers { group.addTask { try await s.tick() } }
            var all: [String] = []
            for try await ids in group { all += ids }
            return all
        }
    }

    func cronSource(_ store: DatabaseStore, _ cron: CronSchedule, now: Date) async throws -> Source {
        var source = makeSource()
        source.cron = cron
        source.nextSlotAt = cron.parsed.flatMap { $0.0.next(after: now, in: $0.1) }
        return try await store.createSource(source)
    }

    @Test(arguments: StoreBackend.allCases)
    func eachSlotQueuesOneSyncOnThreeNodes(_ backend: StoreBackend) async throws {
        let (stores, cleanup) = try await backend.makeStores(3)
        defer { cleanup() }
        let store = stores[0]
        let clock = Clock(at("2026-01-01T00:00:30Z"))
        let schedulers = stores.map { Scheduler(store: $0, clock: clock.read) }
        let source = try await cronSource(store, CronSchedule(expression: "* * * * *", missed: .skip), now: clock.read())
        #expect(try await store.source(idOrName: source.id)?.nextSlotAt == at("2026-01-01T00:01:00Z"))
        #expect(try await tickAll(schedulers).isEmpty, "no slot is due yet")
        var all: [String] = []
        for minute in 1...5 {
            clock.set(at("2026-01-01T00:0\(minute):01Z"))
            let queued = try await tickAll(schedulers)
            #expect(queued.count == 1, "minute \(minute): \(queued)")
            #expect(try await tickAll(schedulers).isEmpty, "a second round takes the same slot again")
            all += queued
            // Each sync ends before the next slot (cancelled while queued).
            for id in queued { _ = try await store.requestCancel(syncID: id, now: clock.read()) }
        }
        #expect(Set(all).count == 5)
        // The next slot finds the sync still active: skipped and counted, never queued twice.
        clock.set(at("2026-01-01T00:06:01Z"))
        let active = try await tickAll(schedulers)
        #expect(active.count == 1)
        clock.set(at("2026-01-01T00:07:01Z"))
        #expect(try await tickAll(schedulers).isEmpty)
        #expect(try await store.source(idOrName: source.id)?.skippedSlots == 1)
        for id in active { _ = try await store.requestCancel(syncID: id, now: clock.read()) }

        // Ten minutes of downtime: `skip` runs nothing for the missed slots and goes on.
        clock.set(at("2026-01-01T00:18:30Z"))
        #expect(try await tickAll(schedulers).isEmpty)
        #expect(try await store.source(idOrName: source.id)?.nextSlotAt == at("2026-01-01T00:19:00Z"))
        clock.set(at("2026-01-01T00:19:01Z"))
        let resumed = try await tickAll(schedulers)
        #expect(resumed.count == 1)
        for id in resumed { _ = try await store.requestCancel(syncID: id, now: clock.read()) }

        // `one`: one catch-up sync after downtime, whatever the number of missed slots.
        var catchUp = try #require(try await store.source(idOrName: source.id))
        catchUp.cron?.missed = .one
        _ = try await store.updateSource(catchUp)
        clock.set(at("2026-01-01T00:45:10Z"))
        #expect(try await tickAll(schedulers).count == 1)
        #expect(try await tickAll(schedulers).isEmpty)
        #expect(try await store.source(idOrName: source.id)?.nextSlotAt == at("2026-01-01T00:46:00Z"))
    }

    /// "30 2 * * *" in Europe/Berlin over both 2026 change days, ticking every quarter hour:
    /// no sync on the day 02:30 does not exist, one on the day it happens twice.
    @Test(arguments: StoreBackend.allCases)
    func dstDaysInANamedZone(_ backend: StoreBackend) async throws {
        let (stores, cleanup) = try await backend.makeStores(3)
        defer { cleanup() }
        let store = stores[0]
        for (start, end, expected) in [
            ("2026-03-27T12:00:00Z", "2026-03-31T12:00:00Z", ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"]),
            ("2026-10-23T12:00:00Z", "2026-10-27T12:00:00Z", ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"]),
        ] {
            let clock = Clock(at(start))
            let schedulers = stores.map { Scheduler(store: $0, clock: clock.read) }
            let source = try await cronSource(store, CronSchedule(expression: "30 2 * * *", timezone: "Europe/Berlin", missed: .skip), now: clock.read())
            var slots: [Date] = []
            var t = at(start)
            while t < at(end) {
                t = t.addingTimeInterval(900)
                clock.set(t)
                for id in try await tickAll(schedulers) {
                    let sync = try #require(try await store.sync(id: id))
                    slots.append(sync.queuedAt)
                    _ = try await store.requestCancel(syncID: id, now: t)
                }
            }
            // Ticks every 15 min, on the quarter hours: each slot is found at its time.
            let f = ISO8601DateFormatter()
            #expect(slots.count == expected.count, "\(slots.map(f.string(from:)))")
            for (slot, want) in zip(slots, expected) {
                #expect(slot >= at(want) && slot.timeIntervalSince(at(want)) <= 60, "\(f.string(from: slot)) for \(want)")
            }
            try await store.deleteSource(id: source.id)
        }
    }

    /// `jitter_seconds` queues the slot's sync to run up to that much later (here the random
    /// draw is 0.5: 15 s of 30); a slot 59 s late still runs and one 61 s late is missed
    /// (`skip`: nothing); a paused source's slot is not taken while it is paused.
    @Test(arguments: StoreBackend.allCases)
    func jitterTheMissedBoundaryAndAPausedSource(_ backend: StoreBackend) async throws {
        let (store, cleanup) = try await backend.makeStore()
        defer { cleanup() }
        let clock = Clock(at("2026-01-01T00:30:00Z"))
        let scheduler = Scheduler(store: store, clock: clock.read, random: { 0.5 })
        var jittered = CronSchedule(expression: "0 * * * *", missed: .skip)
        jittered.jitterSeconds = 30
        let source = try await cronSource(store, jittered, now: clock.read())
        clock.set(at("2026-01-01T01:00:59Z"))  // 59 s late: not missed
        let queued = try await scheduler.tick()
        #expect(queued.count == 1)
        let runAt = try #require(try await store.nextRunAt())
        #expect(abs(runAt.timeIntervalSince(at("2026-01-01T01:00:59Z")) - 15) < 0.01, "run at \(runAt)")
        for id in queued { _ = try await store.requestCancel(syncID: id, now: clock.read()) }

        clock.set(at("2026-01-01T02:01:01Z"))  // 61 s late: missed, and skip runs nothing
        #expect(try await scheduler.tick().isEmpty)
        #expect(try await store.source(idOrName: source.id)?.nextSlotAt == at("2026-01-01T03:00:00Z"))

        _ = try await store.setPaused(sourceID: source.id, paused: true, now: clock.read())
        clock.set(at("2026-01-01T03:00:01Z"))
        #expect(try await scheduler.tick().isEmpty, "a paused source's slot was taken")
        #expect(try await store.source(idOrName: source.id)?.nextSlotAt == at("2026-01-01T03:00:00Z"), "the slot stays for the resume")
        _ = try await store.setPaused(sourceID: source.id, paused: false, now: clock.read())
        clock.set(at("2026-01-01T03:00:30Z"))
        #expect(try await scheduler.tick().count == 1, "resumed within the minute: the slot runs")
    }
}
