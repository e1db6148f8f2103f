import Foundation
import Synchronization

/// Lets waiters sleep until signalled or until a timeout, whichever comes first.
public final class WakeSignal: Sendable {
    private enum Slot {
        case pending
        case waiting(CheckedContinuation<Void, Never>)
        case woken
    }

    /// Each waiter's slot, by a number no other waiter of this signal has had.
    private let slots = Mutex((next: UInt64(0), slots: [UInt64: Slot]()))

    /// A signal with no waiters.
    public init() {}

    /// Returns when `signal()` is called or `timeout` passes (or the task is cancelled).
    public func wait(timeout: Duration) async {
        let id = slots.withLock { state -> UInt64 in
            state.next += 1
            state.slots[state.next] = .pending
            return state.next
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.slots.withLock { state -> Bool in
                        if case .woken = state.slots[id] { return true }
                        state.slots[id] = .waiting(continuation)
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
        slots.withLock { _ = $0.slots.removeValue(forKey: id) }
    }

    /// Wakes every current waiter (including one that is just about to sleep).
    public func signal() {
        let waiters = slots.withLock { state -> [CheckedContinuation<Void, Never>] in
            var waiters: [CheckedContinuation<Void, Never>] = []
            for (id, slot) in state.slots {
                if case .waiting(let continuation) = slot { waiters.append(continuation) }
                state.slots[id] = .woken
            }
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func wake(_ id: UInt64) {
        let waiter = slots.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.slots[id] = .woken }
            if case .waiting(let continuation) = state.slots[id] { return continuation }
            return nil
        }
        waiter?.resume()
    }
}
