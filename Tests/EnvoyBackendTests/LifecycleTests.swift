import EnvoyBackend
import EnvoyFramework
import EnvoyPlugins
import EnvoySim
import EnvoyTestSupport
import Foundation
import Logging
import ServiceLifecycle
import Testing

@Suite("The backend's connections are services of the application: they close when it stops")
struct LifecycleTests {
    @Test("the Redis client is a service of the application: its connections close when the application stops")
    func redisClosedOnShutdown() async throws {
        let server = try RedisServer()
        let stack = try TestStack { $0.redis = try RedisEndpoint(url: server.url) }
        let backend = try await stack.backend()
        let observer = try RedisClient(
            configuration: .init(endpoint: try RedisEndpoint(url: server.url), commandTimeout: .seconds(2)),
            logger: Logger(label: "observer"))
        func clients() async throws -> Int {
            // The backend's connections: every one but the observer's own (which only ever ran CLIENT LIST).
            (try await observer.send("CLIENT", "LIST").string ?? "").split(separator: "\n").filter {
                !$0.contains("cmd=client|list")
            }.count
        }
        let app = backend.application(inProcessWorker: true)
        let group = ServiceGroup(services: [app], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            #expect(await eventually { ((try? await clients()) ?? 0) > 0 }, "the worker holds connections")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let closed = await eventually { (try? await clients()) == 0 }
        let list = (try? await observer.send("CLIENT", "LIST").string) ?? ""
        #expect(closed, "connections left open after shutdown: \(list)")
        observer.shutdown()
    }

    @Test("the PostgreSQL pool is a service of the application: its connections close when the application stops")
    func postgresClosedOnShutdown() async throws {
        let url = try SharedPostgres.freshDatabase()
        let stack = try TestStack { $0.postgres = try PostgresEndpoint(url: url) }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let observer = try PostgresDatabase(url: url, applicationName: "observer", logger: logger)
        func connections() async throws -> Int {
            // The fresh database's connections but the observer's own.
            try await observer.value(
                Int.self,
                """
                SELECT COUNT(*)::BIGINT FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = 'envoy'
                """) ?? -1
        }
        let backend = try await Backend.make(configuration: stack.configuration, logger: logger)
        #expect(try await connections() > 0, "migrations opened connections")
        let group = ServiceGroup(services: [backend.application(inProcessWorker: true)], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            #expect(await eventually { ((try? await connections()) ?? 0) > 0 }, "the worker holds connections")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // Closed by the time the group returned: the pool's service waits for them. The server lists a closed
        // connection until its backend process has exited, a few milliseconds on a loaded machine, so the count
        // is given a second — far below an idle pool's own timeout, so a pool left open still fails this.
        #expect(await eventually(timeout: .seconds(1)) { (try? await connections()) == 0 })
    }
}
