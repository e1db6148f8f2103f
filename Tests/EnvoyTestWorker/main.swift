// A worker process for the fault tests: runs `record` tasks from a Redis queue, and can be SIGKILLed at any
// moment. A task marks itself done in the Redis set `PREFIX:done` and counts its runs in `PREFIX:runs`;
// a task with `poison: true` kills its own process, every time; one with `sleepMilliseconds` notes its start in
// the list `PREFIX:started`, then takes that long.
import EnvoyFramework
import EnvoyPlugins
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

struct Record: TaskHandler {
    struct Payload: Codable, Sendable {
        var n: Int
        var poison: Bool?
        var sleepMilliseconds: Int?
    }
    static let taskType = "record"
    static let queue = "faults"
    static let retryPolicy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(10), maxDelay: .milliseconds(100))

    let client: RedisClient
    let prefix: String

    func handle(_ payload: Payload, context: TaskContext) async throws {
        if payload.poison == true { kill(getpid(), SIGKILL) }
        if let pause = payload.sleepMilliseconds {
            try await client.send("RPUSH", RedisArgument("\(prefix):started"), RedisArgument(payload.n))
            try await Task.sleep(for: .milliseconds(pause))
        }
        try await client.send("INCR", RedisArgument("\(prefix):runs"))
        try await client.send("SADD", RedisArgument("\(prefix):done"), RedisArgument(payload.n))
    }
}

@main
struct EnvoyTestWorker {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 5, let concurrency = Int(arguments[3]), let lease = Int(arguments[4]) else {
            print("usage: EnvoyTestWorker REDIS_URL PREFIX CONCURRENCY LEASE_MS")
            exit(2)
        }
        var logger = Logger(label: "test-worker")
        logger.logLevel = .error
        let client = try RedisClient(
            configuration: .init(endpoint: try RedisEndpoint(url: arguments[1]), commandTimeout: .seconds(2)),
            logger: logger)
        let queue = RedisTaskQueue(client: client, prefix: arguments[2])
        var registry = TaskRegistry()
        registry.register(Record(client: client, prefix: arguments[2]))
        let worker = TaskWorker(
            queue: queue, registry: registry,
            configuration: .init(concurrency: concurrency, queues: [Record.queue], lease: .milliseconds(lease)),
            logger: logger, metrics: NOOPMetricsHandler.instance)
        let group = ServiceGroup(
            configuration: .init(services: [worker], gracefulShutdownSignals: [.sigterm], logger: logger))
        try await group.run()
    }
}
