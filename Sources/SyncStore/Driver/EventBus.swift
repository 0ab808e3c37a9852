import Foundation
import Synchronization

/// Events published within one process (SQLite's, whose other processes poll).
final class EventBus: Sendable {
    private let subscribers = Mutex<[UUID: @Sendable (StoreEvent) -> Void]>([:])

    func publish(_ events: [StoreEvent]) {
        guard !events.isEmpty else { return }
        let receivers = subscribers.withLock { Array($0.values) }
        for receiver in receivers { for event in events { receiver(event) } }
    }

    /// Delivers events to `onEvent` until the calling task is cancelled.
    func listen(_ onEvent: @escaping @Sendable (StoreEvent) -> Void) async {
        let id = UUID()
        subscribers.withLock { $0[id] = onEvent }
        defer { _ = subscribers.withLock { $0.removeValue(forKey: id) } }
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }
}
