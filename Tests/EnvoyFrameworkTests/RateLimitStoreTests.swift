import Foundation
import EnvoyTestSupport
import HTTPTypes
import Synchronization
import Testing

@testable import EnvoyFramework

@Suite("MemoryRateLimitStore: exact sliding log")
struct RateLimitStoreTests {

    let perMinute = RateLimitPolicy(name: "minute", limit: 10, window: 60, key: .clientIP, match: .init())
    let perHour = RateLimitPolicy(name: "hour", limit: 3, window: 3600, key: .clientIP, match: .init())

    @Test("1,000 concurrent callers on one key: exactly the limit is admitted")
    func exactUnderConcurrency() async {
        let store = MemoryRateLimitStore()
        let policy = RateLimitPolicy(name: "p", limit: 50, window: 60, key: .clientIP, match: .init())
        let admitted = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<1000 {
                group.addTask { store.acquire([RateLimitCheck(policy: policy, key: "k")]).admitted }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 50)
    }

    @Test("a request rejected by one policy consumes nothing from the others")
    func rejectionConsumesNothing() {
        let clock = ManualClock(1_000_000.0)
        let store = MemoryRateLimitStore(now: clock.now)
        let both = [RateLimitCheck(policy: perMinute, key: "a"), RateLimitCheck(policy: perHour, key: "a")]
        for _ in 0..<3 { #expect(store.acquire(both).admitted) }
        for _ in 0..<5 {
            let decision = store.acquire(both)
            #expect(!decision.admitted)
            #expect(decision.violated.map(\.policy.name) == ["hour"])
        }
        // The minute policy saw only the 3 admitted requests.
        let minuteOnly = store.acquire([RateLimitCheck(policy: perMinute, key: "a")])
        #expect(minuteOnly.outcomes[0].remaining == 10 - 4)
    }

    @Test("never more than N in ANY rolling window, and a slot frees exactly when the oldest leaves")
    func rollingWindow() {
        let clock = ManualClock(1_000_000.0)
        let store = MemoryRateLimitStore(now: clock.now)
        let check = [RateLimitCheck(policy: perMinute, key: "a")]
        for _ in 0..<5 { #expect(store.acquire(check).admitted) }
        clock.advance(30)
        for _ in 0..<5 { #expect(store.acquire(check).admitted) }
        let rejected = store.acquire(check)
        #expect(!rejected.admitted)
        #expect(rejected.outcomes[0].resetAfter == 30)
        #expect(RateLimitHeaders.retryAfter(rejected) == 30)
        clock.advance(29.9)
        #expect(!store.acquire(check).admitted)
        clock.advance(0.2)
        // The first five left the window; five slots are free, not ten (a fixed window would give ten).
        for _ in 0..<5 { #expect(store.acquire(check).admitted) }
        #expect(!store.acquire(check).admitted)
    }

    @Test("refusals are counted per key by minute: the last hour's most refused first; forgetting ends a refusal")
    func mostRefused() {
        let denied = DeniedKeys(capacity: 100)
        let policy = RateLimitPolicy(name: "login", limit: 1, window: 3600, key: .clientIP, match: .init())
        let refusal = RateLimitDecision(
            outcomes: [RateLimitOutcome(policy: policy, allowed: false, remaining: 0, resetAfter: 3600)], now: 0)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        for (key, times) in [("ip:a", 5), ("ip:b", 2)] {
            for _ in 0..<times { denied.count(refusal, checks: [.init(policy: policy, key: key)], at: start) }
        }
        denied.count(refusal, checks: [.init(policy: policy, key: "ip:b")], at: start.addingTimeInterval(1800))
        let now = start.addingTimeInterval(1800)
        #expect(denied.mostRefused(limit: 5, at: now).map(\.key) == ["ip:a", "ip:b"])
        #expect(denied.mostRefused(limit: 5, at: now).map(\.count) == [5, 3])
        // 61 minutes after the first burst only ip:b's later refusal is within the hour.
        let later = start.addingTimeInterval(61 * 60)
        #expect(denied.mostRefused(limit: 5, at: later).map(\.key) == ["ip:b"])
        #expect(denied.mostRefused(limit: 5, at: later).first?.count == 1)
        // A remembered refusal is answered locally until forgotten.
        let check = RateLimitCheck(policy: policy, key: "ip:a")
        denied.remember(refusal, checks: [check])
        #expect(denied.denied([check]).count == 1)
        denied.forget(policy: "login", key: "ip:a")
        #expect(denied.denied([check]).isEmpty)
    }

    @Test("keys are independent, and idle keys are swept so memory stays bounded")
    func keysAndSweep() {
        let clock = ManualClock(1_000_000.0)
        let store = MemoryRateLimitStore(now: clock.now)
        for index in 0..<5000 { _ = store.acquire([RateLimitCheck(policy: perMinute, key: "k\(index)")]) }
        #expect(store.activeKeys == 5000)
        clock.advance(61)
        for _ in 0..<4096 { _ = store.acquire([RateLimitCheck(policy: perMinute, key: "fresh")]) }
        #expect(store.activeKeys <= 2)
    }

    @Test("headers: X-RateLimit-* name the policy closest to exhaustion; Retry-After is rounded up")
    func headers() {
        let clock = ManualClock(1_000_000.0)
        let store = MemoryRateLimitStore(now: clock.now)
        let both = [RateLimitCheck(policy: perMinute, key: "a"), RateLimitCheck(policy: perHour, key: "a")]
        let decision = store.acquire(both)
        let fields = RateLimitHeaders.fields(for: decision)
        #expect(fields[.xRateLimitLimit] == "3")
        #expect(fields[.xRateLimitRemaining] == "2")
        #expect(fields[.xRateLimitReset] == String(Int(1_000_000 + 3600)))
        #expect(fields[.rateLimitPolicy] == #""minute";q=10;w=60, "hour";q=3;w=3600"#)
        #expect(fields[.rateLimit] == #""minute";r=9;t=60, "hour";r=2;t=3600"#)
        #expect(fields[.retryAfter] == nil)
        clock.advance(0.5)
        _ = store.acquire(both)
        _ = store.acquire(both)
        let rejected = RateLimitHeaders.fields(for: store.acquire(both))
        #expect(rejected[.retryAfter] == "3600")
    }

    @Test("policies from a file are validated with the field named")
    func validation() {
        #expect(throws: RateLimitPolicyError.self) {
            try RateLimitPolicy(name: "bad", limit: 0, window: 60, key: .clientIP, match: .init()).validate()
        }
        #expect(throws: RateLimitPolicyError.self) {
            try RateLimitPolicy(name: "has space", limit: 1, window: 60, key: .clientIP, match: .init()).validate()
        }
        #expect(throws: RateLimitPolicyError.self) {
            try RateLimitPolicy(name: "u", limit: 1, window: 60, key: .user, match: .init(authenticated: false))
                .validate()
        }
        for policy in RateLimitPolicy.defaults { #expect(throws: Never.self) { try policy.validate() } }
    }
}
