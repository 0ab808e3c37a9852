import Dispatch
import Foundation
import Synchronization

/// Files a command is writing that must not outlive it: when SIGINT or SIGTERM ends the
/// command they are removed, then the signal ends the process as it would have (exit status
/// 128 + the signal). A SIGKILL cannot be caught: the file's name says which process left it.
enum InterruptCleanup {
    private static let paths = Mutex<Set<String>>([])
    private static let installed = Atomic<Bool>(false)
    /// Kept for the life of the process (a released source stops delivering).
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    /// Removes `path` if an interrupt ends the command before ``forget(_:)``.
    static func remove(onInterrupt path: String) {
        paths.withLock { _ = $0.insert(path) }
        installOnce()
    }

    /// `path` was renamed into place or removed: an interrupt leaves it alone.
    static func forget(_ path: String) {
        paths.withLock { _ = $0.remove(path) }
    }

    private static func installOnce() {
        guard installed.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else { return }
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                for path in paths.withLock({ $0 }) { unlink(path) }
                signal(number, SIG_DFL)
                kill(getpid(), number)
            }
            // Until the source is registered an ignored signal would be lost: the file is
            // made only once both are (a second at most).
            let registered = DispatchSemaphore(value: 0)
            source.setRegistrationHandler { registered.signal() }
            source.resume()
            _ = registered.wait(timeout: .now() + 1)
            sources.append(source)
        }
    }
}
