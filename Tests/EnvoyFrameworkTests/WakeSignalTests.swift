import EnvoyFramework
import Foundation
import Testing

@Suite("Wake signals and random ids")
struct WakeSignalTests {
    @Test(
        "hundreds of waiters, woken by signals and by timeouts, all return and none is lost",
        .timeLimit(.minutes(1)))
    func manyWaiters() async {
        let signal = WakeSignal()
        // Half the waiters time out quickly; the other half would sleep for an hour, so only a signal can
        // return them. A waiter whose continuation was lost never returns, and the time limit fails the test.
        let signaller = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(10))
                signal.signal()
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<400 {
                group.addTask { await signal.wait(timeout: index % 2 == 0 ? .milliseconds(50) : .seconds(3_600)) }
            }
        }
        signaller.cancel()
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
