import EnvoyFramework
import Foundation
import Metrics
import Testing
import EnvoySim
import EnvoyTestSupport

@testable import EnvoyPlugins

/// Every multi-key script's keys share one hash slot: checked on a one-node cluster (all 16,384 slots on one
/// `redis-server --cluster-enabled yes`), which refuses any command or script whose keys span slots (`CROSSSLOT`)
/// just as a many-node cluster does. `RedisClusterTests` runs the same on three masters.
@Suite("Redis Cluster slots: CRC16, and every provider's scripts on a cluster-mode server")
struct RedisClusterSlotTests {
    @Test("CRC16 and hash tags as Redis computes them")
    func slots() {
        #expect(RedisKeySlot.crc16(Array("123456789".utf8)[...]) == 0x31C3)
        #expect(RedisKeySlot.of("foo") == 12182)
        #expect(RedisKeySlot.of("{user1000}.following") == RedisKeySlot.of("{user1000}.followers"))
        #expect(RedisKeySlot.of("foo{}{bar}") != RedisKeySlot.of("bar"))  // an empty tag: the whole key is hashed
        #expect(RedisKeySlot.of("foo{{bar}}zap") == RedisKeySlot.of("{bar"))
        #expect(RedisKeySlot.of("foo{bar}{zap}") == RedisKeySlot.of("bar"))
    }

    @Test("limiter (one and several subjects), cache and queue scripts run on a cluster-mode server")
    func providersOnCluster() async throws {
        // The cluster bus port is given: its default (port + 10,000) does not exist for ports above 55,535.
        let server = try RedisServer([
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-port", String(try RedisServer.freePort()),
        ])
        let redis = try client(server.url, timeout: .seconds(5))
        defer { redis.shutdown() }
        _ = try await redis.send("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        let ready = await eventually(timeout: .seconds(10)) {
            ((try? await redis.send("CLUSTER", "INFO").string) ?? "").contains("cluster_state:ok")
        }
        try #require(ready)
        // The control: keys in two slots are refused.
        do {
            _ = try await redis.send("MGET", "a", "b")
            Issue.record("a cluster-mode server took keys of two slots")
        } catch {
            #expect("\(error)".contains("CROSSSLOT"), "\(error)")
        }

        // A user and an IP (both algorithms), kept in two slots — each subject's own — and decided all or nothing.
        let limiter = RedisRateLimitStore(client: redis, prefix: "envoy")
        let user = RateLimitPolicy(name: "user", limit: 2, window: 60, key: .user, match: .init())
        let ip = RateLimitPolicy(name: "ip", limit: 100, window: 60, key: .clientIP, match: .init(), algorithm: .gcra)
        let checks = [
            RateLimitCheck(policy: user, key: "user:u1", tag: "u1"), RateLimitCheck(policy: ip, key: "ip:1.2.3.4"),
        ]
        var admitted = 0
        for _ in 0..<5 where try await limiter.acquire(checks).admitted { admitted += 1 }
        #expect(admitted == 2)
        #expect(RedisKeySlot.of(limiter.key(checks[0])) != RedisKeySlot.of(limiter.key(checks[1])))

        let profiles = ScopedCache<String>(
            name: "profile", provider: RedisCache(client: redis, prefix: "envoy"), ttl: .seconds(60), logger: quiet,
            metrics: NOOPMetricsHandler.instance)
        #expect(try await profiles.fetch(scope: "u1") { "v1" } == ("v1", .miss))
        #expect(try await profiles.fetch(scope: "u1") { "unused" } == ("v1", .hit))
        await profiles.invalidate(scope: "u1")
        #expect(try await profiles.fetch(scope: "u1") { "v2" } == ("v2", .miss))

        let queue = RedisTaskQueue(client: redis, prefix: "envoy")
        let task = NewTask(type: "t", queue: "q", payload: [1], maxAttempts: 3, deduplicationKey: "k")
        guard case .enqueued = try await queue.enqueue(task) else { return #expect(Bool(false), "not enqueued") }
        #expect(try await queue.enqueue(task) == .duplicate)
        var claimed = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        #expect(try await queue.renew(claimed, lease: .seconds(30)))
        try await queue.release(claimed)
        claimed = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        try await queue.bury(claimed, error: "boom")
        #expect(try await queue.deadTasks(limit: 10).count == 1)
        #expect(try await queue.retryDead(ids: nil) == 1)
        claimed = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        try await queue.retry(claimed, after: .milliseconds(1), error: "again")
        try await Task.sleep(for: .milliseconds(20))
        claimed = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        try await queue.complete(claimed)
        #expect(try await queue.stats().allSatisfy { $0.ready == 0 && $0.inFlight == 0 && $0.dead == 0 })
    }
}
