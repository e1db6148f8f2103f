import EnvoyBackend
import EnvoyPlugins
import EnvoyFramework
import EnvoySim
import EnvoyTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import Testing

@Suite("The backend with REDIS_URL: every provider on Redis")
struct RedisBackendTests {
    private let xCache = HTTPField.Name("X-Cache")!

    @Test(
        "register → login → profile MISS/HIT → update shows → welcome email via the Redis queue; /health says redis ok")
    func journeyOnRedis() async throws {
        let prefix = SharedRedis.prefix()
        let stack = try TestStack {
            $0.redis = try RedisEndpoint(url: SharedRedis.url)
            $0.redisKeyPrefix = prefix
        }
        let backend = try await stack.backend()
        #expect(backend.redis != nil)
        let summary = backend.summary
        #expect("\(summary["cache"] ?? "")".hasPrefix("redis 127.0.0.1:"))
        #expect(
            "\(summary["queue"] ?? "")".hasPrefix("redis 127.0.0.1:") && "\(summary["queue"] ?? "")".contains("outbox"))
        let app = backend.application(inProcessWorker: true)
        try await app.test(.ahc(.http)) { client in
            let health = try await client.send(.get, "/health")
            #expect(
                try health.json()["components"] as? [String: String] == [
                    "database": "ok", "redis": "ok", "queue": "ok",
                ])
            let metrics = String(buffer: try await client.send(.get, "/metrics").body)
            #expect(metrics.contains("\nenvoy_redis_masters_reachable 1"), "every master answers")
            let token = try await client.signUp(email: "redis-\(prefix)@example.com")
            #expect(try await client.send(.get, "/v1/user/profile", token: token).headers[xCache] == "MISS")
            #expect(try await client.send(.get, "/v1/user/profile", token: token).headers[xCache] == "HIT")
            _ = try await client.send(.put, "/v1/user/profile", json: #"{"company":"Upstash"}"#, token: token)
            let after = try await client.send(.get, "/v1/user/profile", token: token)
            #expect(after.headers[xCache] == "MISS")
            #expect(try after.json()["company"] as? String == "Upstash")
            #expect(await eventually { stack.outbox().count == 1 })
        }
    }

    @Test("a cached GET with its limits checked costs one Redis round trip: the limiter sends the cache read along")
    func oneRoundTripPerCachedRead() async throws {
        let server = try RedisServer()  // its own, so that every read event on it is ours
        let stack = try TestStack { $0.redis = try RedisEndpoint(url: server.url) }
        var backend = try await stack.backend()
        let redis = try #require(backend.redis)
        // A third cached route is one declaration, and costs the same single round trip.
        let settings = ScopedCache<[String: String]>(
            name: "settings", provider: backend.cacheProvider, ttl: .seconds(60), logger: backend.logger,
            metrics: backend.metrics)
        backend.addCachedRoute("/v1/user/settings", cache: settings) { userID, _ in ["theme": "dark", "user": userID] }
        try await backend.application(inProcessWorker: false).test(.ahc(.http)) { client in
            let token = try await client.signUp()
            for path in ["/v1/user/profile", "/api/notifications?limit=5", "/v1/user/settings"] {
                #expect(try await client.send(.get, path, token: token).headers[xCache] == "MISS")
                for _ in 0..<4 { _ = try await redis.readsProcessed() }  // every pooled connection made
                let before = try await redis.readsProcessed()
                for _ in 0..<20 {
                    let response = try await client.send(.get, path, token: token)
                    #expect(response.status == .ok && response.headers[xCache] == "HIT")
                    #expect(response.headers[.init("RateLimit-Policy")!] != nil)
                }
                // 20 reads and the count's own INFO; at most one more event, a pooled connection opened on a loaded
                // machine in between (its first INFO). Two round trips a read would be 40 or more.
                let events = try await redis.readsProcessed() - before
                #expect((21...22).contains(events), "\(path): \(events) read events for 20 cached reads")
            }
        }
    }

    @Test("two instances on one Redis, 300 concurrent login attempts: exactly 5 admitted in total")
    func sharedLimits() async throws {
        let prefix = SharedRedis.prefix()
        let first = try TestStack {
            $0.redis = try RedisEndpoint(url: SharedRedis.url)
            $0.redisKeyPrefix = prefix
        }
        var secondConfiguration = first.configuration
        secondConfiguration.databasePath = first.directory.appendingPathComponent("second.db").path
        let appA = try await first.backend().application(inProcessWorker: false)
        let appB = try await Backend.make(configuration: secondConfiguration, logger: .init(label: "b")).application(
            inProcessWorker: false)
        try await appA.test(.ahc(.http)) { clientA in
            try await appB.test(.ahc(.http)) { clientB in
                let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for index in 0..<300 {
                        group.addTask {
                            let client: any TestClientProtocol = index % 2 == 0 ? clientA : clientB
                            return try await client.send(
                                .post, "/v1/auth/login",
                                json: #"{"email":"x\#(index)@example.com","password":"wrong-password"}"#
                            ).status
                        }
                    }
                    return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
                }
                #expect(statuses.filter { $0 == .unauthorized }.count == 5)
                #expect(statuses.filter { $0 == .tooManyRequests }.count == 295)
            }
        }
    }

    @Test("Redis unreachable: reads BYPASS the cache, limits hold in process, health says redis down — no 5xx")
    func redisDown() async throws {
        let port = try RedisServer.freePort()
        let stack = try TestStack {
            $0.redis = try RedisEndpoint(url: "redis://127.0.0.1:\(port)")
            $0.redisTimeout = .milliseconds(100)
        }
        let app = try await stack.backend().application(inProcessWorker: false)
        try await app.test(.ahc(.http)) { client in
            let health = try await client.send(.get, "/health")
            #expect(health.status == .ok)
            #expect(try health.json()["status"] as? String == "degraded")
            #expect((try health.json()["components"] as? [String: String])?["redis"] == "down")
            let metrics = String(buffer: try await client.send(.get, "/metrics").body)
            #expect(
                metrics.contains("\nenvoy_redis_masters 1") && metrics.contains("\nenvoy_redis_masters_reachable 0"),
                "the gauges the EnvoyRedisDown alert compares")
            var statuses: [HTTPResponse.Status] = []
            for index in 0..<8 {
                let start = ContinuousClock.now
                statuses.append(
                    try await client.send(
                        .post, "/v1/auth/login",
                        json: #"{"email":"d\#(index)@example.com","password":"wrong-password"}"#
                    ).status)
                // The deadline (100 ms) bounds what a dead Redis adds; bcrypt and a loaded machine take the rest.
                #expect(ContinuousClock.now - start < .seconds(2))
            }
            #expect(statuses.prefix(5).allSatisfy { $0 == .unauthorized })
            #expect(statuses.suffix(3).allSatisfy { $0 == .tooManyRequests })
        }
    }

    @Test(
        "Redis stopped, profile updated on one instance, Redis restarted from its AOF: another instance shows the update"
    )
    func outageSafeInvalidation() async throws {
        let server = try RedisServer(["--appendonly", "yes", "--appendfsync", "always"])
        let stackA = try TestStack {
            $0.redis = try RedisEndpoint(url: server.url)
            $0.redisTimeout = .milliseconds(200)
        }
        var configurationB = stackA.configuration
        configurationB.port = 0
        let appA = try await stackA.backend().application(inProcessWorker: false)
        let appB = try await Backend.make(configuration: configurationB, logger: Logger(label: "b")).application(
            inProcessWorker: false)
        try await appA.test(.ahc(.http)) { a in
            try await appB.test(.ahc(.http)) { b in
                let token = try await a.signUp(email: "outage@example.com")
                _ = try await b.send(.get, "/v1/user/profile", token: token)
                #expect(try await b.send(.get, "/v1/user/profile", token: token).headers[xCache] == "HIT")
                server.kill()
                let update = try await a.send(
                    .put, "/v1/user/profile", json: #"{"company":"During the outage"}"#, token: token)
                #expect(update.status == .ok)
                try server.restart()
                let read = try await b.send(.get, "/v1/user/profile", token: token)
                #expect(read.status == .ok)
                #expect(try read.json()["company"] as? String == "During the outage")
                #expect(read.headers[xCache] != "HIT")
            }
        }
    }

    @Test(
        "Redis down when a user registers: the welcome email waits in the local outbox and is sent once Redis is back")
    func outboxKeepsTasks() async throws {
        let server = try RedisServer()
        let stack = try TestStack {
            $0.redis = try RedisEndpoint(url: server.url)
            $0.redisTimeout = .milliseconds(200)
        }
        let app = try await stack.backend().application(inProcessWorker: true)
        try await app.test(.ahc(.http)) { client in
            server.kill()
            let registered = try await client.send(
                .post, "/v1/auth/register",
                json: #"{"email":"offline@example.com","password":"correct horse","name":"Off"}"#)
            #expect(registered.status == .created)
            try await Task.sleep(for: .milliseconds(300))
            #expect(stack.outbox().isEmpty)
            try server.restart()
            #expect(await eventually(timeout: .seconds(15)) { stack.outbox().count == 1 })
            #expect(stack.outbox().first?.contains("To: offline@example.com") == true)
        }
    }

    @Test("a database index the server refuses stops start-up with a line naming REDIS_URL, not a degraded start")
    func refusedDatabase() async throws {
        let stack = try TestStack { $0.redis = try RedisEndpoint(url: SharedRedis.url + "/9999") }
        do {
            _ = try await stack.backend()
            Issue.record("the backend started on a database Redis refuses")
        } catch let error as ConfigurationError {
            #expect(error.variable == "REDIS_URL")
            #expect(error.description.contains("database"))
        }
    }
}
