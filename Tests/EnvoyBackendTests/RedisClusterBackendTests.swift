import EnvoyBackend
import EnvoyFramework
import EnvoyPlugins
import EnvoySim
import EnvoyTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// The backend with `REDIS_URL` naming one node of a real 3-master cluster (a replica each).
@Suite("The backend on a Redis Cluster: one node's URL, every provider, a master's failover", .serialized)
struct RedisClusterBackendTests {
    private let xCache = HTTPField.Name("X-Cache")!

    @Test("journey on one node's URL: cache, limits, welcome emails through the queue; /health counts the masters")
    func journey() async throws {
        let cluster = try await RedisCluster()
        let stack = try TestStack { $0.redis = try RedisEndpoint(url: cluster.firstNodeURL) }
        let backend = try await stack.backend()
        let redis = try #require(backend.redis)
        let masters = try await cluster.masters().map(\.port)
        try await backend.application(inProcessWorker: true).test(.ahc(.http)) { client in
            let health = try await client.send(.get, "/health").json()["components"] as? [String: String]
            #expect(health?["redis"] == "ok" && health?["redis_masters"] == "3/3", "\(String(describing: health))")
            #expect(redis.isCluster)
            var tokens: [String] = []
            for index in 0..<3 { tokens.append(try await client.signUp(email: "c\(index)@example.com")) }
            for token in tokens {
                #expect(try await client.send(.get, "/v1/user/profile", token: token).headers[xCache] == "MISS")
                #expect(try await client.send(.get, "/v1/user/profile", token: token).headers[xCache] == "HIT")
            }
            _ = try await client.send(.put, "/v1/user/profile", json: #"{"company":"Valkey"}"#, token: tokens[0])
            let after = try await client.send(.get, "/v1/user/profile", token: tokens[0])
            let company = try after.json()["company"] as? String
            #expect(after.headers[xCache] == "MISS" && company == "Valkey")
            #expect(await eventually { stack.outbox().count == 3 }, "every welcome email went through the queue")

            let metrics = try await client.send(.get, "/metrics").text
            #expect(metrics.contains("envoy_redis_calls_total{node=\"127.0.0.1:"))
        }
    }

    @Test("a cached, rate-limited profile read is one round trip to one master")
    func oneRoundTrip() async throws {
        let cluster = try await RedisCluster()
        let stack = try TestStack { $0.redis = try RedisEndpoint(url: cluster.firstNodeURL) }
        let backend = try await stack.backend()
        let masters = try await cluster.masters().map(\.port)
        try await backend.application(inProcessWorker: false).test(.ahc(.http)) { client in
            let token = try await client.signUp(email: "rt@example.com")
            for _ in 0..<3 { _ = try await client.send(.get, "/v1/user/profile", token: token) }
            // The welcome email relayed from the outbox first: its enqueue (and its replica's WAIT) are not reads.
            let relayed = await eventually {
                let stats = (try? await backend.taskQueue.stats()) ?? []
                return stats.map(\.ready).reduce(0, +) == 1 && !stats.contains { $0.queue == "(outbox)" }
            }
            #expect(relayed)
            // Read events on every master, before and after 20 cached reads.
            func reads() async throws -> Int {
                var total = 0
                for port in masters {
                    total += Int(try await cluster.info(port: port, field: "total_reads_processed") ?? "") ?? 0
                }
                return total
            }
            let started = ContinuousClock.now
            let before = try await reads()
            for _ in 0..<20 {
                #expect(try await client.send(.get, "/v1/user/profile", token: token).headers[xCache] == "HIT")
            }
            let made = try await reads() - before - masters.count  // less the INFO calls of the second count
            // Other reads come in between (each replica acknowledges its master's stream once a second; a pooled
            // connection first used reads its INFO), a few: two round trips a read would be 40 or more.
            let elapsed = ContinuousClock.now - started
            #expect((20..<40).contains(made), "20 cached reads made \(made) read events in \(elapsed)")
        }
    }

    @Test("200 users' keys and commands spread over the 3 masters, none holding under 18 % or over 50 %")
    func spreadOf200Users() async throws {
        let cluster = try await RedisCluster()
        let stack = try TestStack {
            $0.redis = try RedisEndpoint(url: cluster.firstNodeURL)
            $0.rateLimitPolicies = [
                .init(name: "users", limit: 1000, window: 60, key: .user, match: .init(authenticated: true)),
                .init(name: "others", limit: 10_000, window: 60, key: .clientIP, match: .init(authenticated: false)),
            ]
        }
        let backend = try await stack.backend()
        let masters = try await cluster.masters().map(\.port).sorted()
        @Sendable func perMaster(_ read: (RedisServer) async throws -> Int) async throws -> [Int] {
            var counts: [Int] = []
            for port in masters { counts.append(try await read(try #require(cluster.server(port: port)))) }
            return counts
        }
        try await backend.application(inProcessWorker: true).test(.ahc(.http)) { client in
            var tokens: [String] = []
            for index in 0..<200 { tokens.append(try await client.signUp(email: "spread\(index)@example.com")) }
            #expect(await eventually(timeout: .seconds(60)) { stack.outbox().count == 200 })
            // Five reads a user (a miss, then hits, each with its limit checked) and one write.
            let before = try await perMaster { await $0.commandCalls() }
            for token in tokens {
                for _ in 0..<5 { _ = try await client.send(.get, "/v1/user/profile", token: token) }
                _ = try await client.send(.put, "/v1/user/profile", json: #"{"company":"Spread"}"#, token: token)
            }
            let commands = zip(try await perMaster { await $0.commandCalls() }, before).map { $0 - $1 }
            let keys = try await perMaster { try await cluster.keyCount(port: $0.port) }
            let share = { (counts: [Int]) in counts.map { Double($0) / Double(max(1, counts.reduce(0, +))) } }
            // 200 random user ids in 16,384 slots: a master's share of the users is 1/3 ± 10 % (3σ, σ ≈ 3.3 %); the
            // queue's keys and its worker's polls add to one master. One tag for every limit would put all on one.
            print("spread of 200 users over masters \(masters): keys \(keys), commands \(commands)")
            #expect(share(keys).allSatisfy { (0.18...0.50).contains($0) }, "keys \(keys)")
            #expect(share(commands).allSatisfy { (0.18...0.50).contains($0) }, "commands \(commands)")
        }
    }

    @Test("a master SIGKILLed under traffic: no 5xx, no task lost, no stale read; back on its replica after")
    func failoverUnderTraffic() async throws {
        let cluster = try await RedisCluster()
        let stack = try TestStack {
            $0.redis = try RedisEndpoint(url: cluster.firstNodeURL)
            $0.rateLimitPolicies = []
        }
        let backend = try await stack.backend()
        try await backend.application(inProcessWorker: true).test(.ahc(.http)) { client in
            var tokens: [String] = []
            for index in 0..<9 { tokens.append(try await client.signUp(email: "before\(index)@example.com")) }
            for token in tokens { _ = try await client.send(.get, "/v1/user/profile", token: token) }
            try await Task.sleep(for: .milliseconds(300))  // the replicas catch up
            let victim = try #require(try await cluster.masters().first)
            var statuses: [HTTPResponse.Status] = []
            var signedUp = 0
            var worst = Duration.zero
            let killer = Task { try await cluster.killMaster(port: victim.port) }
            let started = ContinuousClock.now
            while ContinuousClock.now - started < .seconds(4) {
                for token in tokens {
                    let sent = ContinuousClock.now
                    statuses.append(try await client.send(.get, "/v1/user/profile", token: token).status)
                    worst = max(worst, ContinuousClock.now - sent)
                }
                let sent = ContinuousClock.now
                let response = try await client.send(
                    .post, "/v1/auth/register",
                    json: #"{"email":"during\#(signedUp)@example.com","password":"correct horse battery","name":"D"}"#)
                worst = max(worst, ContinuousClock.now - sent)
                statuses.append(response.status)
                if response.status == .created { signedUp += 1 }
            }
            try await killer.value
            #expect(statuses.allSatisfy { $0.code < 500 }, "\(statuses.filter { $0.code >= 500 })")
            #expect(signedUp > 0, "sign-ups went on during the failover")
            // Writes after the failover are read back, never an entry from before it.
            for (index, token) in tokens.enumerated() {
                _ = try await client.send(
                    .put, "/v1/user/profile", json: #"{"company":"after\#(index)"}"#, token: token)
                let profile = try await client.send(.get, "/v1/user/profile", token: token)
                #expect(try profile.json()["company"] as? String == "after\(index)")
            }
            let hits = await eventually(timeout: .seconds(10)) {
                (try? await client.send(.get, "/v1/user/profile", token: tokens[0]).headers[xCache]) == "HIT"
            }
            #expect(hits, "the cache serves again from the promoted replica")
            let health = try await client.send(.get, "/health").json()["components"] as? [String: String]
            #expect(health?["redis"] == "ok", "\(String(describing: health))")
            // At least once: every sign-up's welcome email is delivered (a task whose master died before it was
            // settled, or before a replica confirmed it, may run twice).
            let addresses =
                (0..<9).map { "before\($0)@example.com" } + (0..<signedUp).map { "during\($0)@example.com" }
            func undelivered() -> [String] {
                let sent = stack.outbox().joined(separator: "\n")
                return addresses.filter { !sent.contains("<\($0)>") && !sent.contains(" \($0)") }
            }
            #expect(await eventually(timeout: .seconds(30)) { undelivered().isEmpty }, "lost: \(undelivered())")
            try await Task.sleep(for: .seconds(1))  // a second copy would show by now
            print(
                "failover under traffic: \(statuses.count) requests, \(statuses.filter { $0.code >= 500 }.count) 5xx, "
                    + "worst \(worst); \(stack.outbox().count) emails for \(addresses.count) sign-ups")
        }
    }
}
