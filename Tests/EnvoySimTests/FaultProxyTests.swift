import EnvoyPlugins
import EnvoySim
import Foundation
import Logging
import Testing

@Suite("The TCP fault proxy between the app and Redis")
struct FaultProxyTests {
    @Test("passes traffic, adds latency each way, holds everything in a blackhole and lets it flow afterwards")
    func modes() async throws {
        let redis = try RedisServer()
        let proxy = try await FaultProxy.start(targetPort: redis.port)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let client = try RedisClient(
            configuration: .init(
                endpoint: try RedisEndpoint(url: "redis://127.0.0.1:\(proxy.port)"), commandTimeout: .seconds(5)),
            logger: logger)
        #expect(try await client.send("SET", "k", "v") == .simple("OK"))
        #expect(try await client.send("GET", "k") == .bulk(Array("v".utf8)))

        proxy.set(.latency(.milliseconds(100)))
        var start = ContinuousClock.now
        _ = try await client.send("PING")
        #expect(ContinuousClock.now - start >= .milliseconds(200))

        proxy.set(.blackhole)
        start = ContinuousClock.now
        let held = Task { try await client.send("INCR", "n") }
        try await Task.sleep(for: .milliseconds(500))
        proxy.set(.pass)
        #expect(try await held.value == .integer(1))
        #expect(ContinuousClock.now - start >= .milliseconds(500))
        client.shutdown()
        await proxy.stop()
    }
}
