import EnvoyFramework
import Testing

@Suite("CircuitBreaker")
struct CircuitBreakerTests {
    @Test("opens after the threshold, fails fast, lets one probe through after the cooldown, closes on success")
    func lifecycle() async throws {
        let breaker = CircuitBreaker(threshold: 3, cooldown: .milliseconds(100), maxCooldown: .milliseconds(400))
        for _ in 0..<2 {
            #expect(breaker.allowCall())
            breaker.recordFailure()
        }
        #expect(breaker.state == .closed)
        breaker.recordFailure()
        #expect(breaker.state == .open)
        #expect(!breaker.allowCall())
        try await Task.sleep(for: .milliseconds(120))
        #expect(breaker.allowCall())
        #expect(!breaker.allowCall())
        // The probe fails: open again, for twice as long.
        breaker.recordFailure()
        try await Task.sleep(for: .milliseconds(120))
        #expect(!breaker.allowCall())
        try await Task.sleep(for: .milliseconds(120))
        #expect(breaker.allowCall())
        breaker.recordSuccess()
        #expect(breaker.state == .closed)
        #expect(breaker.allowCall() && breaker.allowCall())
    }
}
