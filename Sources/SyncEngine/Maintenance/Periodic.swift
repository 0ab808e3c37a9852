import Logging
import ServiceLifecycle

/// The loop of a node's periodic services (lease rescuer, scheduler, node heartbeat): run
/// `tick`, sleep `interval`, until graceful shutdown or cancellation. A failing tick is
/// logged at `level` and the loop goes on: the next tick is the retry.
func runPeriodically(
    every interval: Duration, logger: Logger, level: Logger.Level = .error, failure: String,
    _ tick: @escaping @Sendable () async throws -> Void
) async {
    await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            do {
                try await tick()
            } catch {
                // A tick cut short by the shutdown is not a failure.
                if Task.isCancelled || error is CancellationError { return }
                logger.log(level: level, "\(failure): \(error)")
            }
            try? await Task.sleep(for: interval)
        }
    }
}
