import Foundation
import Synchronization

/// Lets waiters sleep until signalled or until a timeout, whichever comes first.
public final class WakeSignal: Sendable {
    private enum Slot {
        case pending
        case waiting(CheckedContinuation<Void, Never>)
        case woken
    }

    private let slots = Mutex([UUID: Slot]())

    /// A signal with no waiters.
    public init() {}

    /// Returns when `signal()` is called or `timeout` passes (or the task is cancelled).
    public func wait(timeout: Duration) async {
        let id = UUID()
        slots.withLock { $0[id] = .pending }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.slots.withLock { slots -> Bool in
                        if case .woken = slots[id] { return true }
                        slots[id] = .waiting(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            self.wake(id)
        }
        slots.withLock { _ = $0.removeValue(forKey: id) }
    }

    /// Wakes every current waiter (including one that is just about to sleep).
    public func signal() {
        let waiters = slots.withLock { slots -> [CheckedContinuation<Void, Never>] in
            var waiters: [CheckedContinuation<Void, Never>] = []
            for (id, slot) in slots {
                if case .waiting(let continuation) = slot { waiters.append(continuation) }
                slots[id] = .woken
            }
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func wake(_ id: UUID) {
        let waiter = slots.withLock { slots -> CheckedContinuation<Void, Never>? in
            defer { slots[id] = .woken }
            if case .waiting(let continuation) = slots[id] { return continuation }
            return nil
        }
        waiter?.resume()
    }
}
