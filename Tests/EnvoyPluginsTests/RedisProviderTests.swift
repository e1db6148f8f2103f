import EnvoyFramework
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import Testing
import EnvoySim
import EnvoyTestSupport

@testable import EnvoyPlugins

@Suite("Redis providers on a real redis-server")
struct RedisProviderTests {
    @Test("RedisCache stores with a TTL, deletes, and serves ScopedCache with race-free invalidation")
    func cache() async throws {
        // Deadlines here are not what is tested: a generous one keeps a loaded machine from failing the test.
        let redis = try client(SharedRedis.url, timeout: .seconds(5))
        let cache = RedisCache(client: redis, prefix: SharedRedis.prefix())
        let a = CacheKey(cache: "test", scope: "u1", rest: "a")
        let b = CacheKey(cache: "test", scope: "u1", rest: "b")
        try await cache.set(a, value: [1, 2, 3], ttl: .seconds(2))
        #expect(try await cache.get(a) == [1, 2, 3])
        // The entry carries the TTL (PTTL is -1 without one). Only its upper bound is fixed: how much of it has
        // passed by now depends on how loaded the machine is (CI once took over a second to get here).
        #expect(
            try await redis.send("PTTL", RedisArgument("\(cache.prefix):cache:test:{u1}:a")).int.map {
                $0 > 0 && $0 <= 2000
            } == true)
        try await Task.sleep(for: .milliseconds(2100))
        #expect(try await cache.get(a) == nil)
        try await cache.set(b, value: [9], ttl: .seconds(60))
        try await cache.delete(b)
        #expect(try await cache.get(b) == nil)

        let profiles = ScopedCache<String>(
            name: "profile", provider: cache, ttl: .seconds(60), logger: quiet, metrics: NOOPMetricsHandler.instance)
        #expect(try await profiles.fetch(scope: "u1") { "v1" } == ("v1", .miss))
        #expect(try await profiles.fetch(scope: "u1") { "unused" } == ("v1", .hit))
        await profiles.invalidate(scope: "u1")
        #expect(try await profiles.fetch(scope: "u1") { "v2" } == ("v2", .miss))
        // A second instance (its own client) sees the same generation: the write invalidated it too.
        let other = ScopedCache<String>(
            name: "profile",
            provider: RedisCache(client: try client(SharedRedis.url, timeout: .seconds(5)), prefix: cachePrefix(cache)),
            ttl: .seconds(60),
            logger: quiet, metrics: NOOPMetricsHandler.instance)
        #expect(try await other.fetch(scope: "u1") { "unused" } == ("v2", .hit))
        redis.shutdown()
    }

    private func cachePrefix(_ cache: RedisCache) -> String { cache.prefix }

    @Test("a cache hit is one round trip: one EVALSHA reading the generation and the entry under it")
    func oneRoundTripHit() async throws {
        let server = try RedisServer()
        let redis = try client(server.url)
        let profiles = ScopedCache<String>(
            name: "profile", provider: RedisCache(client: redis, prefix: "p"), ttl: .seconds(60), logger: quiet,
            metrics: NOOPMetricsHandler.instance)
        #expect(try await profiles.fetch(scope: "u1") { "v1" } == ("v1", .miss))
        func calls(_ command: String) async throws -> Int {
            let info = try await redis.send("INFO", "commandstats").string ?? ""
            let line = info.split(separator: "\r\n").first { $0.hasPrefix("cmdstat_\(command):") } ?? ""
            // `cmdstat_get:calls=6,usec=9,…,failed_calls=0`: the first `calls=`.
            return Int(line.split(separator: "calls=").dropFirst().first?.split(separator: ",").first ?? "0") ?? 0
        }
        let (evalsha, get) = (try await calls("evalsha"), try await calls("get"))
        #expect(try await profiles.fetch(scope: "u1") { "unused" } == ("v1", .hit))
        #expect(try await calls("evalsha") - evalsha == 1)
        #expect(try await calls("get") - get == 2)  // both inside the script
        await profiles.invalidate(scope: "u1")
        #expect(try await profiles.fetch(scope: "u1") { "v2" } == ("v2", .miss))
        #expect(try await profiles.cached(scope: "u1") == "v2")
        redis.shutdown()
    }

    @Test("the limiter's decision and the cache read travel in one pipeline: one read on the server, both answered")
    func decisionAndReadInOneRoundTrip() async throws {
        let server = try RedisServer()
        let redis = try client(server.url, poolSize: 1, timeout: .seconds(5))
        let store = RedisRateLimitStore(client: redis, prefix: "p")
        let profiles = ScopedCache<String>(
            name: "profile", provider: RedisCache(client: redis, prefix: "p"), ttl: .seconds(60), logger: quiet,
            metrics: NOOPMetricsHandler.instance)
        let policy = RateLimitPolicy(name: "user", limit: 3, window: 60, key: .user, match: .init())
        let checks = [RateLimitCheck(policy: policy, key: "user:u1")]
        #expect(try await profiles.fetch(scope: "u1") { "v1" } == ("v1", .miss))
        _ = try await store.acquire([RateLimitCheck(policy: policy, key: "user:other")])  // Redis learns the script
        var before = try await redis.readsProcessed()
        let (decision, prefetched) = try await store.acquire(checks, along: profiles.readAhead(scope: "u1"))
        #expect(try await redis.readsProcessed() - before == 2)  // the pipeline, then the INFO
        #expect(decision.admitted && decision.outcomes.first?.remaining == 2)
        let read = try #require(prefetched)
        before = try await redis.readsProcessed()
        let (json, status) = try await profiles.fetchJSON(scope: "u1", prefetched: read) { "unused" }
        #expect(try await redis.readsProcessed() - before == 1)  // the INFO alone: the hit came with the decision
        #expect(status == .hit && String(decoding: json, as: UTF8.self) == #""v1""#)
        // A read of other keys is not taken for this one.
        #expect(try await profiles.fetchJSON(scope: "u2", prefetched: read) { "v2" }.status == .miss)
        // Redis lost its scripts (a restart): both are loaded again and answer the same.
        try await redis.send("SCRIPT", "FLUSH")
        let again = try await store.acquire(checks, along: profiles.readAhead(scope: "u1"))
        #expect(again.0.admitted && again.0.outcomes.first?.remaining == 1)
        let reread = try #require(again.1)
        #expect(try await profiles.fetchJSON(scope: "u1", prefetched: reread) { "unused" }.status == .hit)
        _ = try await store.acquire(checks)
        let refused = try await store.acquire(checks, along: profiles.readAhead(scope: "u1"))
        #expect(!refused.0.admitted)
        redis.shutdown()
    }

    @Test("two instances sharing Redis, 300 concurrent requests: exactly the limit admitted, in one round trip each")
    func rateLimitAcrossInstances() async throws {
        let prefix = SharedRedis.prefix()
        let instances = [
            RedisRateLimitStore(client: try client(SharedRedis.url, timeout: .seconds(5)), prefix: prefix),
            RedisRateLimitStore(client: try client(SharedRedis.url, timeout: .seconds(5)), prefix: prefix),
        ]
        let login = RateLimitPolicy(name: "login", limit: 50, window: 3600, key: .clientIP, match: .init())
        let anonymous = RateLimitPolicy(name: "anonymous", limit: 1000, window: 60, key: .clientIP, match: .init())
        let checks = [
            RateLimitCheck(policy: anonymous, key: "ip:1.2.3.4"), RateLimitCheck(policy: login, key: "ip:1.2.3.4"),
        ]
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<300 {
                group.addTask { try await instances[index % 2].acquire(checks).admitted }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 50)
        // Rejections consumed nothing from the other policy.
        let decision = try await instances[0].acquire([RateLimitCheck(policy: anonymous, key: "ip:1.2.3.4")])
        #expect(decision.outcomes[0].remaining == 1000 - 51)
        let rejected = try await instances[1].acquire(checks)
        #expect(!rejected.admitted)
        #expect(rejected.violated.map(\.policy.name) == ["login"])
        #expect(RateLimitHeaders.retryAfter(rejected).map { $0 > 3590 && $0 <= 3600 } == true)
    }

    @Test("values stored before a Redis restart read as absent, even when the AOF restores them")
    func cacheForgetsEarlierServerLifetimes() async throws {
        let server = try RedisServer(["--appendonly", "yes", "--appendfsync", "always"])
        let redis = try client(server.url, timeout: .seconds(2))
        let cache = RedisCache(client: redis, prefix: "p")
        let key = CacheKey(cache: "profile", scope: "u1", rest: "g1:")
        try await cache.set(key, value: [1, 2, 3], ttl: .seconds(600))
        #expect(try await cache.get(key) == [1, 2, 3])
        server.kill()
        try server.restart()
        let restored = await eventually(timeout: .seconds(5)) {
            (try? await redis.send("EXISTS", "p:cache:profile:{u1}:g1:").int) == 1
        }
        #expect(restored, "the AOF brought the key back")
        #expect(try await cache.get(key) == nil)
        redis.shutdown()
    }

    @Test(
        "GCRA on Redis: 300 concurrent requests across two instances admit exactly the burst; shadow policies never reject"
    )
    func gcraAndShadowOnRedis() async throws {
        let prefix = SharedRedis.prefix()
        let instances = [
            RedisRateLimitStore(client: try client(SharedRedis.url, timeout: .seconds(5)), prefix: prefix),
            RedisRateLimitStore(client: try client(SharedRedis.url, timeout: .seconds(5)), prefix: prefix),
        ]
        let burst = RateLimitPolicy(
            name: "burst", limit: 40, window: 3600, key: .global, match: .init(), algorithm: .gcra)
        let trial = RateLimitPolicy(name: "trial", limit: 10, window: 3600, key: .global, match: .init(), shadow: true)
        let checks = [RateLimitCheck(policy: burst, key: "global"), RateLimitCheck(policy: trial, key: "global")]
        let decisions = try await withThrowingTaskGroup(of: RateLimitDecision.self) { group in
            for index in 0..<300 { group.addTask { try await instances[index % 2].acquire(checks) } }
            return try await group.reduce(into: [RateLimitDecision]()) { $0.append($1) }
        }
        #expect(decisions.filter(\.admitted).count == 40)
        #expect(decisions.filter { !$0.shadowViolated.isEmpty && $0.admitted }.count == 30)
        let rejected = try #require(decisions.first { !$0.admitted })
        // One slot frees every 3600 / 40 = 90 s.
        #expect(RateLimitHeaders.retryAfter(rejected).map { (85...90).contains($0) } == true)
    }

    @Test("Redis and the in-memory store give the same outcomes for the same sequence")
    func memoryAndRedisAgree() async throws {
        let redis = RedisRateLimitStore(client: try client(SharedRedis.url), prefix: SharedRedis.prefix())
        let memory = MemoryRateLimitStore()
        for algorithm in [RateLimitAlgorithm.slidingLog, .gcra] {
            let policy = RateLimitPolicy(
                name: "p", limit: 4, window: 600, key: .global, match: .init(), algorithm: algorithm)
            for _ in 0..<6 {
                let a = try await redis.acquire([RateLimitCheck(policy: policy, key: "k")])
                let b = memory.acquire([RateLimitCheck(policy: policy, key: "k")])
                #expect(a.admitted == b.admitted)
                #expect(a.outcomes[0].remaining == b.outcomes[0].remaining)
                #expect(abs(a.outcomes[0].resetAfter - b.outcomes[0].resetAfter) < 1, "\(algorithm)")
            }
        }
    }

    @Test("peek and reset: Redis and memory see the same windows without charging them; a reset empties them for all")
    func peekAndResetAgree() async throws {
        let redis = RedisRateLimitStore(client: try client(SharedRedis.url), prefix: SharedRedis.prefix())
        let memory = MemoryRateLimitStore()
        let stores: [any RateLimitStore & RateLimitAdministration] = [redis, memory]
        for algorithm in [RateLimitAlgorithm.slidingLog, .gcra] {
            let policy = RateLimitPolicy(
                name: "p\(algorithm)", limit: 3, window: 600, key: .clientIP, match: .init(), algorithm: algorithm)
            let checks = try #require(RateLimitCheck.checks(subject: "ip:203.0.113.9", policies: [policy]))
            // Both stores filled side by side, then looked at side by side: they agree on what they hold.
            for _ in 0..<3 {
                for store in stores { _ = try await store.acquire(checks) }
            }
            var peeks: [RateLimitDecision] = []
            for store in stores { peeks.append(try await store.peek(checks)) }
            #expect(abs(peeks[0].outcomes[0].resetAfter - peeks[1].outcomes[0].resetAfter) < 1, "\(algorithm)")
            for (store, first) in zip(stores, peeks) {
                let second = try await store.peek(checks)
                #expect(!first.admitted && first.outcomes[0].remaining == 0, "\(algorithm) full")
                #expect(second.outcomes[0].remaining == first.outcomes[0].remaining, "a peek charges nothing")
                let since = Date().timeIntervalSince1970 - 1
                try await store.reset(checks)
                #expect(try await store.peek(checks).outcomes[0].remaining == 3)
                #expect(try await store.acquire(checks).admitted)
                let resets = try await store.resets(since: since)
                #expect(resets.contains { $0.policy == policy.name && $0.key == "ip:203.0.113.9" })
            }
        }
        // Subjects: every form the limiter keys by; IPv6 by its /64; anything else is refused.
        let policies: [RateLimitPolicy] = [
            .init(name: "u", limit: 1, window: 1, key: .user, match: .init()),
            .init(name: "i", limit: 1, window: 1, key: .clientIP, match: .init()),
            .init(name: "h", limit: 1, window: 1, key: .header("X-API-Key"), match: .init()),
        ]
        #expect(RateLimitCheck.checks(subject: "user:42", policies: policies)?.map(\.key) == ["user:42"])
        #expect(RateLimitCheck.checks(subject: "user:42", policies: policies)?.first?.tag == "42")
        #expect(
            RateLimitCheck.checks(subject: "ip:2001:db8::1", policies: policies)?.map(\.key) == ["ip:2001:db8::/64"])
        #expect(
            RateLimitCheck.checks(subject: "header:secret", policies: policies)?.first?.key.hasPrefix("header:") == true
        )
        #expect(
            RateLimitCheck.checks(subject: "header:secret", policies: policies)?.first?.key.contains("secret") == false)
        #expect(RateLimitCheck.checks(subject: "ip:999.1.1.1", policies: policies) == nil)
        #expect(RateLimitCheck.checks(subject: "nonsense", policies: policies) == nil)
    }

    @Test("RedisTaskQueue keeps workers' heartbeats until they expire, and drops the expired ones from its hash")
    func heartbeats() async throws {
        let prefix = SharedRedis.prefix()
        let redis = try client(SharedRedis.url)
        let queue = RedisTaskQueue(client: redis, prefix: prefix)
        let status = WorkerStatus(lanes: 2, queues: [])
        try await queue.recordHeartbeat(status.heartbeat(id: "live", ttl: .seconds(30)))
        try await queue.recordHeartbeat(
            status.heartbeat(id: "gone", ttl: .seconds(1), now: Date().addingTimeInterval(-10)))
        #expect(try await queue.liveWorkers().map(\.id) == ["live"])
        #expect(
            try await redis.send("HKEYS", RedisArgument("\(prefix):workers")).array?.compactMap(\.string) == ["live"])
    }

    @Test("RedisTaskQueue lists a queue's tasks by state, in order, and finds one by id")
    func tasksByState() async throws {
        let queue = RedisTaskQueue(client: try client(SharedRedis.url), prefix: SharedRedis.prefix())
        for n in 0..<4 {
            _ = try await queue.enqueue(NewTask(type: "t\(n)", queue: "q", payload: Array("{}".utf8), maxAttempts: 1))
        }
        let first = try #require(try await queue.claim(queues: ["q"], lease: .seconds(60)))
        let second = try #require(try await queue.claim(queues: ["q"], lease: .seconds(60)))
        try await queue.bury(second, error: "boom")
        #expect(try await queue.tasks(queue: "q", state: .ready, limit: 10).map(\.type) == ["t2", "t3"])
        #expect(try await queue.tasks(queue: "q", state: .ready, limit: 1).map(\.type) == ["t2"])
        #expect(try await queue.tasks(queue: "q", state: .inFlight, limit: 10).map(\.id) == [first.id])
        let dead = try await queue.tasks(queue: "q", state: .dead, limit: 10)
        #expect(dead.map(\.id) == [second.id] && dead.first?.history.last?.contains("boom") == true)
        #expect(try await queue.task(id: first.id)?.state == "in_flight")
        #expect(try await queue.task(id: "nope") == nil)
    }

    @Test("an enqueue is one round trip: queue registered, task stored, workers woken; a duplicate is one too")
    func enqueueInOneRoundTrip() async throws {
        let server = try RedisServer()
        let redis = try client(server.url, poolSize: 1, timeout: .seconds(5))
        let queue = RedisTaskQueue(client: redis, prefix: "p")
        let task = NewTask(type: "t", queue: "q", payload: Array("{}".utf8), maxAttempts: 3, deduplicationKey: "k")
        // Redis learns the script.
        _ = try await queue.enqueue(NewTask(type: "t", queue: "q", payload: [], maxAttempts: 1))
        var before = try await redis.readsProcessed()
        guard case .enqueued = try await queue.enqueue(task) else { Issue.record("not enqueued"); return }
        #expect(try await redis.readsProcessed() - before == 2)  // the pipeline, then the INFO
        before = try await redis.readsProcessed()
        #expect(try await queue.enqueue(task) == .duplicate)
        #expect(try await redis.readsProcessed() - before == 2)
        #expect(try await redis.send("SMEMBERS", "p:queues").array == [.bulk(Array("q".utf8))])
        #expect(try await redis.send("LLEN", "p:wake").int == 1)
        #expect(try await redis.send("LLEN", "{p:q:q}:wake").int == 1)
        // A new task has no attempts or history yet; claimed, it is on its first attempt.
        #expect(try await redis.send("HLEN", "{p:q:q}:attempts").int == 0)
        #expect(try await queue.claim(queues: ["q"], lease: .seconds(30))?.attempt == 1)
        // Redis lost its scripts (a restart): the enqueue loads it again, in the same call.
        try await redis.send("SCRIPT", "FLUSH")
        guard case .enqueued = try await queue.enqueue(NewTask(type: "t", queue: "q", payload: [], maxAttempts: 1))
        else { Issue.record("not enqueued after SCRIPT FLUSH"); return }
        #expect(try await queue.stats().first { $0.queue == "q" }?.ready == 2)
        redis.shutdown()
    }

    @Test("RedisTaskQueue: claim under lease, fencing, expiry, retry, dead letters, dedup, retry-dead")
    func queue() async throws {
        // Leases of seconds, not milliseconds: on a loaded CI machine 300 ms passed between two calls here once.
        let redis = try client(SharedRedis.url, timeout: .seconds(5))
        let prefix = SharedRedis.prefix()
        let queue = RedisTaskQueue(client: redis, prefix: prefix, deduplicationWindow: .seconds(60))
        let task = NewTask(
            type: "t", queue: "q", payload: Array(#"{"n":1}"#.utf8), maxAttempts: 2, deduplicationKey: "evt_1")
        guard case .enqueued = try await queue.enqueue(task) else { Issue.record("not enqueued"); return }
        #expect(try await queue.enqueue(task) == .duplicate)
        let first = try #require(try await queue.claim(queues: ["q"], lease: .seconds(3)))
        #expect(first.payload == task.payload && first.attempt == 1)
        #expect(try await queue.claim(queues: ["q"], lease: .seconds(30)) == nil)
        #expect(try await queue.renew(first, lease: .seconds(1)))
        try await Task.sleep(for: .milliseconds(1500))
        let second = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        #expect(second.id == first.id && second.attempt == 2)
        await #expect(throws: LeaseLost.self) { try await queue.complete(first) }
        try await queue.retry(second, after: .milliseconds(100), error: "flaky")
        #expect(try await queue.stats().first?.delayed == 1)
        try await Task.sleep(for: .milliseconds(200))
        let third = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        try await queue.bury(third, error: "permanent: no")
        let dead = try await queue.deadTasks(limit: 10)
        #expect(dead.count == 1)
        #expect(dead.first?.history.count == 3)
        #expect(dead.first?.history.first?.contains("lease expired") == true)
        #expect(try await queue.retryDead(ids: nil) == 1)
        let revived = try #require(try await queue.claim(queues: [], lease: .seconds(30)))
        #expect(revived.attempt == 1)
        try await queue.release(revived)
        let again = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        #expect(again.attempt == 1)
        try await queue.bury(again, error: "permanent: once more")
        #expect(try await queue.deleteDead(ids: ["no-such-id"]) == 0)
        #expect(try await queue.deleteDead(ids: nil) == 1)
        #expect(try await queue.deadTasks(limit: 10).isEmpty)
        let hashes = ["task", "attempts", "token", "history", "died"]
        for hash in hashes {
            let left = try await redis.send("HLEN", RedisArgument("{\(prefix):q:q}:\(hash)"))
            #expect(left.int == 0, "\(hash) keeps a record of the deleted task")
        }
        #expect(
            try await queue.stats() == [
                QueueStats(queue: "q", ready: 0, delayed: 0, inFlight: 0, dead: 0, oldestReadyAge: 0)
            ])
        redis.shutdown()
    }

    @Test("a worker on RedisTaskQueue wakes on enqueue (no polling delay) and drains 500 tasks")
    func worker() async throws {
        let redis = try client(SharedRedis.url, timeout: .seconds(5))
        let queue = RedisTaskQueue(client: redis, prefix: SharedRedis.prefix())
        struct Count: TaskHandler {
            struct Payload: Codable, Sendable { var n: Int }
            static let taskType = "count"
            let seen: Counted
            func handle(_ payload: Payload, context: TaskContext) async throws { seen.add(payload.n) }
        }
        let seen = Counted()
        var registry = TaskRegistry()
        registry.register(Count(seen: seen))
        let worker = TaskWorker(
            queue: queue, registry: registry, configuration: .init(concurrency: 4, pollInterval: .seconds(60)),
            logger: quiet,
            metrics: NOOPMetricsHandler.instance)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let services = ServiceGroup(services: [worker], logger: quiet)
            group.addTask { try await services.run() }
            try await Task.sleep(for: .milliseconds(200))
            let start = ContinuousClock.now
            try await queue.enqueue(Count.self, .init(n: -1))
            #expect(await eventually(timeout: .seconds(20)) { seen.values.contains(-1) })
            // Woken by the enqueue, far before the 60 s poll interval (generous: CI machines are shared).
            #expect(ContinuousClock.now - start < .seconds(20))
            for n in 0..<500 { try await queue.enqueue(Count.self, .init(n: n)) }
            #expect(await eventually(timeout: .seconds(30)) { seen.values.count == 501 })
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        #expect(Set(seen.values) == Set(-1..<500))
        redis.shutdown()
    }
}

final class Counted: Sendable {
    private let storage = Mutex([Int]())
    func add(_ value: Int) { storage.withLock { $0.append(value) } }
    var values: [Int] { storage.withLock { $0 } }
}
