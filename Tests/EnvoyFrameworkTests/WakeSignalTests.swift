import EnvoyFramework
import Foundation
import Testing

@Suite("Wake signals and random ids")
struct WakeSignalTests {
    @Test("hundreds of waiters, woken by signals and by timeouts, all return and none is lost")
    func manyWaiters() async {
        let signal = WakeSignal()
        let start = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<400 {
                group.addTask { await signal.wait(timeout: .milliseconds(index % 2 == 0 ? 50 : 5_000)) }
            }
            for _ in 0..<20 {
                try? await Task.sleep(for: .milliseconds(10))
                signal.signal()
            }
            try? await Task.sleep(for: .milliseconds(100))
            signal.signal()  // wakes any long waiter that started after the last signal
        }
        #expect(ContinuousClock.now - start < .seconds(4))
    }

    @Test("random UUIDs are version 4, RFC 4122 variant, and distinct")
    func randomUUIDs() {
        let ids = (0..<10_000).map { _ in UUID.random() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(100) {
            #expect(id.uuid.6 >> 4 == 4)
            #expect(id.uuid.8 >> 6 == 0b10)
        }
    }
}
