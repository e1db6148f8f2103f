import EnvoyFramework
import EnvoySim
import EnvoyTestSupport
import Foundation
import Metrics
import Synchronization
import Testing

@testable import EnvoyPlugins

/// Against a real cluster of 3 masters with a replica each, started per test (`redis-cli --cluster create`).
@Suite("Redis Cluster: routing by slot, redirects, resharding and failover on a real cluster", .serialized)
struct RedisClusterTests {
    @Test("one node's URL is enough: the client finds the cluster, and keys of every slot land on their master")
    func routing() async throws {
        let cluster = try await RedisCluster()
        let redis = try client(cluster.firstNodeURL, timeout: .seconds(2))
        defer { redis.shutdown() }
        for index in 0..<300 { try await redis.send("SET", RedisArgument("key:\(index)"), RedisArgument(index)) }
        #expect(redis.isCluster)
        for index in 0..<300 { #expect(try await redis.send("GET", RedisArgument("key:\(index)")).int == Int64(index)) }
        // Every master holds some of the keys (and no key is on a node that does not serve its slot).
        var total = 0
        for master in try await cluster.masters() {
            let count = try await cluster.keyCount(port: master.port)
            #expect(count > 50, "master \(master.port) holds \(count) of 300 keys")
            total += count
        }
        #expect(total == 300)
        let reachable = await redis.mastersReachable()
        #expect(reachable == (3, 3))
    }

    @Test("TLS and AUTH on every node: the seed's credentials and CA reach each master the map names")
    func tlsAndAuth() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificates = try RedisServer.makeCertificates(in: directory)
        let cluster = try await RedisCluster(security: .init(password: "cluster p@ss", certificates: certificates))
        #expect(cluster.firstNodeURL.hasPrefix("rediss://:cluster%20p%40ss@127.0.0.1:"))
        let redis = try client(cluster.firstNodeURL, caFile: certificates.ca, timeout: .seconds(3))
        defer { redis.shutdown() }
        for index in 0..<300 { try await redis.send("SET", RedisArgument("t:\(index)"), RedisArgument(index)) }
        #expect(redis.isCluster)
        for index in 0..<300 { #expect(try await redis.send("GET", RedisArgument("t:\(index)")).int == Int64(index)) }
        for master in try await cluster.masters() {
            #expect(try await cluster.keyCount(port: master.port) > 50, "every master was reached over TLS with AUTH")
        }
        // Without the CA, or with a wrong password, nothing is served (and the password is never in the error).
        let untrusted = try client(cluster.firstNodeURL, timeout: .seconds(2))
        defer { untrusted.shutdown() }
        await #expect(throws: RedisError.self) { try await untrusted.send("GET", "t:1") }
        let wrong = try client(
            cluster.firstNodeURL.replacingOccurrences(of: "cluster%20p%40ss", with: "wrong-pass"),
            caFile: certificates.ca, timeout: .seconds(2))
        defer { wrong.shutdown() }
        do {
            _ = try await wrong.send("GET", "t:1")
            Issue.record("a wrong password was accepted")
        } catch {
            #expect(!"\(error)".contains("wrong-pass") && !"\(error)".contains("p@ss"), "\(error)")
        }
    }

    @Test("a pipeline across the masters is split, sent to each, and its replies come back in order")
    func pipelineAcrossMasters() async throws {
        let cluster = try await RedisCluster()
        let redis = try client(cluster.url, timeout: .seconds(2))
        defer { redis.shutdown() }
        let writes = (0..<100).map { ["SET", RedisArgument("p:\($0)"), RedisArgument("v\($0)")] as [RedisArgument] }
        #expect(try await redis.pipeline(writes).allSatisfy { $0 == .simple("OK") })
        let reads = try await redis.pipeline((0..<100).map { ["GET", RedisArgument("p:\($0)")] })
        #expect(reads.map(\.string) == (0..<100).map { "v\($0)" })
        // Scripts route by their first key, and NOSCRIPT is answered per node.
        let script = RedisScript("return redis.call('INCR', KEYS[1])")
        for index in 0..<30 { #expect(try await redis.run(script, keys: ["s:\(index)"], arguments: []).int == 1) }
    }

    @Test("the limiter, the cache and the queue work on a cluster; the queue's worker wakes on enqueue")
    func providers() async throws {
        let cluster = try await RedisCluster()
        let redis = try client(cluster.firstNodeURL, timeout: .seconds(2))
        defer { redis.shutdown() }
        let limiter = RedisRateLimitStore(client: redis, prefix: "envoy")
        let user = RateLimitPolicy(name: "user", limit: 5, window: 60, key: .user, match: .init())
        for subject in 0..<20 {
            var admitted = 0
            for _ in 0..<8
            where try await limiter.acquire([RateLimitCheck(policy: user, key: "user:u\(subject)")])
                .admitted
            {
                admitted += 1
            }
            #expect(admitted == 5)
        }
        let profiles = ScopedCache<String>(
            name: "profile", provider: RedisCache(client: redis, prefix: "envoy"), ttl: .seconds(60), logger: quiet,
            metrics: NOOPMetricsHandler.instance)
        for subject in 0..<20 {
            #expect(try await profiles.fetch(scope: "u\(subject)") { "v1" } == ("v1", .miss))
            #expect(try await profiles.fetch(scope: "u\(subject)") { "unused" } == ("v1", .hit))
            await profiles.invalidate(scope: "u\(subject)")
            #expect(try await profiles.fetch(scope: "u\(subject)") { "v2" } == ("v2", .miss))
        }
        let queue = RedisTaskQueue(client: redis, prefix: "envoy")
        let start = ContinuousClock.now
        async let woken: Void = queue.waitForTasks(queues: ["mail"], timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(200))
        _ = try await queue.enqueue(NewTask(type: "t", queue: "mail", payload: [1], maxAttempts: 3))
        await woken
        #expect(ContinuousClock.now - start < .seconds(5), "the wait ended by the enqueue, not its timeout")
        for name in ["a", "b", "c", "d"] {
            _ = try await queue.enqueue(NewTask(type: "t", queue: name, payload: [2], maxAttempts: 3))
        }
        var claimed = 0
        while let task = try await queue.claim(queues: [], lease: .seconds(30)) {
            try await queue.complete(task)
            claimed += 1
        }
        #expect(claimed == 5)
    }

    @Test("a user's limits share their cache's slot; a user and an IP policy in two slots: all or nothing, never over")
    func limitsAcrossSlots() async throws {
        let cluster = try await RedisCluster()
        let redis = try client(cluster.firstNodeURL, timeout: .seconds(2))
        defer { redis.shutdown() }
        let limiter = RedisRateLimitStore(client: redis, prefix: "envoy")
        let user = RateLimitPolicy(name: "user", limit: 3, window: 60, key: .user, match: .init())
        let ip = RateLimitPolicy(name: "ip", limit: 5, window: 60, key: .clientIP, match: .init(), algorithm: .gcra)
        func checks(_ id: String) -> [RateLimitCheck] {
            [RateLimitCheck(policy: user, key: "user:\(id)", tag: id), RateLimitCheck(policy: ip, key: "ip:1.2.3.4")]
        }
        #expect(
            RedisKeySlot.of(limiter.key(checks("ann")[0]))
                == RedisKeySlot.of("envoy:cache:profile:{ann}:x"), "a user's limits and cache share a slot")
        #expect(RedisKeySlot.of(limiter.key(checks("ann")[0])) != RedisKeySlot.of(limiter.key(checks("ann")[1])))
        // Ann's fourth request is refused by her own policy: its charge on the shared IP is taken back, so Bob
        // still has the two requests the IP has room for.
        var ann = 0
        for _ in 0..<4 where try await limiter.acquire(checks("ann")).admitted { ann += 1 }
        var bob = 0
        for _ in 0..<4 where try await limiter.acquire(checks("bob")).admitted { bob += 1 }
        #expect(ann == 3 && bob == 2)
        // Many users at once behind one fresh IP: never more than the IP's limit admitted.
        let burst = RateLimitPolicy(name: "burst", limit: 10, window: 60, key: .clientIP, match: .init())
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<60 {
                group.addTask {
                    try await limiter.acquire([
                        RateLimitCheck(policy: user, key: "user:crowd\(index % 20)", tag: "crowd\(index % 20)"),
                        RateLimitCheck(policy: burst, key: "ip:5.6.7.8"),
                    ]).admitted
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 10)
    }

    @Test("slots resharded live under traffic: every call answers, every value written reads back")
    func reshardUnderTraffic() async throws {
        let cluster = try await RedisCluster()
        let redis = try client(cluster.firstNodeURL, timeout: .seconds(2))
        defer { redis.shutdown() }
        for index in 0..<2_000 { try await redis.send("SET", RedisArgument("r:\(index)"), RedisArgument(index)) }
        let masters = try await cluster.masters().sorted { $0.port < $1.port }
        let traffic = Traffic()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<4 {
                group.addTask {
                    var index = lane
                    while !traffic.stop.load(ordering: .relaxed) {
                        let key = RedisArgument("r:\(index % 2_000)")
                        do {
                            let value = try await redis.send("GET", key).int
                            if value != Int64(index % 2_000) {
                                traffic.failures.withLock {
                                    $0.append("r:\(index % 2_000)=\(String(describing: value))")
                                }
                            }
                            try await redis.send("SET", key, RedisArgument(index % 2_000))
                        } catch {
                            traffic.failures.withLock { $0.append("\(error)") }
                        }
                        index += 4
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            try await cluster.reshard(slots: 1_000, from: masters[0].port, to: masters[1].port)
            traffic.stop.store(true, ordering: .relaxed)
            try await group.waitForAll()
        }
        #expect(traffic.failures.withLock { $0 }.isEmpty, "\(traffic.failures.withLock { $0.prefix(5) })")
        #expect(redis.cluster.counters.redirectCount > 0, "the traffic met the migration")
        for index in 0..<2_000 { #expect(try await redis.send("GET", RedisArgument("r:\(index)")).int == Int64(index)) }
    }

    @Test("an enqueue is stored exactly when it says so, whichever other master is down")
    func enqueueWithAnotherMasterDown() async throws {
        let cluster = try await RedisCluster()
        let redis = try client(cluster.firstNodeURL, timeout: .milliseconds(500))
        defer { redis.shutdown() }
        let masters = try await cluster.masters()
        func master(_ key: String) -> Int? {
            let slot = RedisKeySlot.of(key)
            return masters.first { $0.slotRanges.contains { $0.contains(slot) } }?.port
        }
        // A prefix whose queue registry, global wake list and queue are on three different masters.
        let prefix = try #require(
            (0..<500).map { "t\($0)" }.first { prefix in
                Set([master("\(prefix):queues"), master("\(prefix):wake"), master("{\(prefix):q:mail}")]).count == 3
            })
        let queue = RedisTaskQueue(client: redis, prefix: prefix)
        func enqueue() async throws -> EnqueueResult {
            try await queue.enqueue(NewTask(type: "t", queue: "mail", payload: [1], maxAttempts: 3))
        }
        guard case .enqueued = try await enqueue() else { Issue.record("not enqueued"); return }
        try await Task.sleep(for: .milliseconds(300))  // the replicas catch up

        // The wake list's master dies: the task is stored, and the enqueue says so (a worker's poll finds it).
        let wake = try #require(master("\(prefix):wake"))
        cluster.server(port: wake)?.kill()
        guard case .enqueued = try await enqueue() else { Issue.record("not enqueued"); return }
        try await cluster.waitUntilFailedOver(wake)
        try await Task.sleep(for: .milliseconds(300))

        // The registry's master dies: the enqueue fails, and nothing was stored (the caller's outbox has the
        // only copy, so no task is ever sent twice).
        let registry = try #require(master("\(prefix):queues"))
        cluster.server(port: registry)?.kill()
        await #expect(throws: RedisError.self) { try await enqueue() }
        try await cluster.waitUntilFailedOver(registry)
        let ready = await eventually(timeout: .seconds(10)) {
            (try? await queue.stats())?.first { $0.queue == "mail" }?.ready == 2
        }
        let stats = try await queue.stats()
        #expect(ready, "\(stats)")
    }

    @Test("a master SIGKILLed: once its replica takes over, every key reads back there without a new client")
    func failover() async throws {
        let cluster = try await RedisCluster()
        let redis = try client(cluster.firstNodeURL, timeout: .milliseconds(500))
        defer { redis.shutdown() }
        for index in 0..<300 { try await redis.send("SET", RedisArgument("f:\(index)"), RedisArgument(index)) }
        try await Task.sleep(for: .milliseconds(300))  // the replicas catch up
        let victim = try #require(try await cluster.masters().first)
        let killedAt = ContinuousClock.now
        try await cluster.killMaster(port: victim.port)
        let promoted = ContinuousClock.now - killedAt
        // Back on the cluster without a restart of the client: the map follows the promotion.
        let recovered = await eventually(timeout: .seconds(10)) {
            for index in 0..<300 {
                guard (try? await redis.send("GET", RedisArgument("f:\(index)")).int) == Int64(index) else {
                    return false
                }
            }
            return true
        }
        #expect(recovered, "every key reads back from the promoted replica (promotion took \(promoted))")
        let reachable = await redis.mastersReachable()
        #expect(reachable == (3, 3))
    }
}

/// What the traffic lanes of a test share: a stop flag and the failures they met.
private final class Traffic: Sendable {
    let stop = Atomic<Bool>(false)
    let failures = Mutex<[String]>([])
}
