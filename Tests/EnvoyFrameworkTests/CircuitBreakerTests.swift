import EnvoyFramework
import Testing

@Suite("CircuitBreaker")
struct CircuitBreakerTests {
    @Test("opens after the threshold, fails fast, lets one probe through after the cooldown, closes on success")
    func lifecycle() async throws {
        let breaker = CircuitBreaker(threshold: 3, cooldown: .milliseconds(300), maxCooldown: .seconds(2))
        for _ in 0..<2 {
            #expect(breaker.allowCall())
            breaker.recordFailure()
        }
        #expect(breaker.state == .closed)
        breaker.recordFailure()
        #expect(breaker.state == .open)
        #expect(!breaker.allowCall())
        try await Task.sleep(for: .milliseconds(350))
        #expect(breaker.allowCall())
        #expect(!breaker.allowCall())
        // The probe fails: open again at once, now for twice as long.
        breaker.recordFailure()
        #expect(!breaker.allowCall())
        try await Task.sleep(for: .milliseconds(650))
        #expect(breaker.allowCall())
        breaker.recordSuccess()
        #expect(breaker.state == .closed)
        #expect(breaker.allowCall() && breaker.allowCall())
    }
}
