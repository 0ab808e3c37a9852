import Logging
import Synchronization
import Testing
@testable import SyncEngine

/// The periodic services' loop (lease rescuer, scheduler, node heartbeat).
@Suite("Periodic services")
struct PeriodicTests {
    final class Lines: Sendable {
        let value = Mutex<[(Logger.Level, String)]>([])
    }

    final class Counter: Sendable {
        let value = Mutex(0)
    }

    /// A tick cut short by the shutdown (its database call throws `CancellationError`) is not
    /// logged as a failure; a tick that really fails is. CI saw "scheduling failed:
    /// CancellationError()" at error level when a node stopped mid-tick.
    @Test func aTickCutShortByTheShutdownIsNotAFailure() async throws {
        let lines = Lines()
        let logger = Logger(label: "test") { _ in ForwardingCapture(target: lines) }
        let started = Counter()
        let task = Task {
            await runPeriodically(every: .milliseconds(5), logger: logger, failure: "ticking failed") {
                let n = started.value.withLock { $0 += 1; return $0 }
                if n == 1 { throw Boom() }
                try await Task.sleep(for: .seconds(60))  // cancelled below: throws CancellationError
            }
        }
        while started.value.withLock({ $0 }) < 2 { try await Task.sleep(for: .milliseconds(5)) }
        task.cancel()
        await task.value
        let logged = lines.value.withLock { $0 }
        #expect(logged.count == 1, "\(logged)")
        #expect(logged.first?.0 == .error && logged.first?.1.contains("ticking failed: Boom") == true, "\(logged)")
    }

    struct Boom: Error, CustomStringConvertible { var description: String { "Boom" } }

    /// A log handler that keeps what it is given.
    struct ForwardingCapture: LogHandler {
        let target: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { target.value.withLock { $0.append((event.level, "\(event.message)")) } }
    }
}
