import AsyncHTTPClient
import EnvoyBackend
import EnvoyFramework
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The real stack a run drives: a `redis-server` on a free port (or a Redis Cluster), `envoy serve --no-worker`,
/// `envoy worker` processes, and the mock Mailgun and Paddle they talk to — all in a fresh directory, all stopped at the end.
public final class SimStack: Sendable {
    /// The run's directory (database, outbox, logs).
    public let directory: URL
    /// The Redis server, when the scenario uses one.
    public let redis: RedisServer?
    /// The Redis Cluster, when the scenario names masters.
    public let redisCluster: RedisCluster?
    /// The proxy the app reaches Redis through, only for runs with latency or blackhole faults: it lives in the
    /// generator's process, so without such faults the app talks to Redis directly and the path measured is the
    /// real one.
    public let redisProxy: FaultProxy?
    /// The mock Mailgun.
    public let mailgun: MockMailgun
    /// The mock Paddle.
    public let paddle: MockPaddle
    /// `http://127.0.0.1:PORT` of each `envoy serve` instance.
    public let baseURLs: [String]
    /// The first instance's address (set-up and one-off calls).
    public var baseURL: String { baseURLs[0] }
    private let nextInstance = Atomic<Int>(0)
    /// The environment `envoy serve` and `envoy worker` run with.
    public let environment: [String: String]
    let binary: URL
    /// The `envoy serve` instances.
    let servers: [ChildProcess]
    let workers: Mutex<[ChildProcess?]>

    private init(
        directory: URL, redis: RedisServer?, redisCluster: RedisCluster?, redisProxy: FaultProxy?, mailgun: MockMailgun,
        paddle: MockPaddle,
        baseURLs: [String],
        environment: [String: String], binary: URL, servers: [ChildProcess], workers: [ChildProcess?]
    ) {
        self.directory = directory
        self.redis = redis
        self.redisCluster = redisCluster
        self.redisProxy = redisProxy
        self.mailgun = mailgun
        self.paddle = paddle
        self.baseURLs = baseURLs
        self.environment = environment
        self.binary = binary
        self.servers = servers
        self.workers = Mutex(workers)
    }

    /// Starts everything and waits until `envoy serve` answers `/health`; `proxyRedis` puts a `FaultProxy` between
    /// the app and Redis.
    public static func start(
        _ stack: Scenario.Stack, proxyRedis: Bool, envoy binary: URL, templates: String?, client: HTTPClient
    ) async throws -> SimStack {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("envoy-sim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let redis = stack.redis.isEnabled && !stack.redis.isCluster ? try RedisServer() : nil
        let redisCluster =
            stack.redis.isCluster
            ? try await RedisCluster(masters: stack.redis.masters, replicasPerMaster: stack.redis.replicas) : nil
        var redisProxy: FaultProxy?
        if let redis, proxyRedis { redisProxy = try await FaultProxy.start(targetPort: redis.port) }
        let mailgun = try await MockMailgun.start()
        let paddle = try await MockPaddle.start()
        var environment = [
            "HOST": "127.0.0.1", "DATABASE_URL": "sqlite://\(directory.path)/envoy.db",
            "JWT_SECRET": "envoy-sim-jwt-secret-0123456789abcdef", "MAIL_OUTBOX_DIR": "\(directory.path)/outbox",
            "MAILGUN_API_KEY": mailgun.apiKey, "MAILGUN_DOMAIN": "sim.envoy.test",
            "MAILGUN_API_BASE_URL": mailgun.baseURL,
            "PADDLE_WEBHOOK_SECRET": paddle.webhookSecret, "PADDLE_API_KEY": paddle.apiKey,
            "PADDLE_API_BASE_URL": paddle.baseURL, "TRUSTED_PROXIES": "127.0.0.1/32", "LOG_LEVEL": "error",
        ]
        if let templates { environment["EMAIL_TEMPLATES_DIR"] = templates }
        if let redis { environment["REDIS_URL"] = "redis://127.0.0.1:\(redisProxy?.port ?? redis.port)" }
        if let redisCluster { environment["REDIS_URL"] = redisCluster.url }
        environment.merge(stack.env) { $1 }
        var servers: [ChildProcess] = []
        var baseURLs: [String] = []
        for _ in 0..<stack.instances {
            let port = try RedisServer.freePort()
            var instance = environment
            instance["PORT"] = "\(port)"
            servers.append(
                try ChildProcess(
                    binary: binary, arguments: ["serve"] + (stack.workers > 0 ? ["--no-worker"] : []),
                    directory: directory, environment: instance))
            baseURLs.append("http://127.0.0.1:\(port)")
        }
        let started = SimStack(
            directory: directory, redis: redis, redisCluster: redisCluster, redisProxy: redisProxy, mailgun: mailgun,
            paddle: paddle,
            baseURLs: baseURLs, environment: environment, binary: binary, servers: servers, workers: [])
        try await started.waitUntilHealthy(client: client)
        try started.startWorkers(stack.workers)
        return started
    }

    /// The URL of the Redis (one server, or every node of the cluster as seeds), bypassing any proxy.
    public var redisURL: String? { redisCluster?.url ?? redis?.url }

    /// Every Redis process: the one server, or the cluster's nodes.
    public var redisNodes: [RedisServer] { redisCluster?.nodes ?? redis.map { [$0] } ?? [] }

    /// The next instance's address, in turn.
    func nextBaseURL() -> String {
        baseURLs[nextInstance.wrappingAdd(1, ordering: .relaxed).oldValue % baseURLs.count]
    }

    /// Polls each instance's `/health` until it answers 200, or fails with the server's output.
    func waitUntilHealthy(client: HTTPClient, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        for (server, baseURL) in zip(servers, baseURLs) {
            while true {
                if !server.isRunning { throw SimError.stack("envoy serve exited: \(server.log.suffix(2000))") }
                if let response = try? await client.execute(
                    HTTPClientRequest(url: baseURL + "/health"), timeout: .seconds(2)),
                    response.status == .ok
                {
                    break
                }
                guard ContinuousClock.now < deadline else {
                    throw SimError.stack(
                        "envoy serve did not become healthy in \(timeout): \(server.log.suffix(2000))")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Starts `count` `envoy worker` processes.
    func startWorkers(_ count: Int) throws {
        let launched = try (0..<count).map { _ in
            var worker = environment
            worker["WORKER_METRICS_PORT"] = String(try RedisServer.freePort())  // each its own /metrics
            return try ChildProcess(binary: binary, arguments: ["worker"], directory: directory, environment: worker)
        }
        workers.withLock { $0 = launched }
    }

    /// SIGKILLs every worker (the fault `worker_kill`); returns how many were running.
    @discardableResult
    func killWorkers() -> Int {
        workers.withLock { workers in
            let running = workers.compactMap { $0 }.filter(\.isRunning)
            for worker in running { worker.signal(SIGKILL) }
            let count = running.count
            workers = Array(repeating: nil, count: workers.count)
            return count
        }
    }

    /// Starts as many workers as there were before `killWorkers`.
    func restartWorkers() throws {
        let count = workers.withLock { $0.count }
        try startWorkers(count)
    }

    /// SIGSTOP (`true`) or SIGCONT every `envoy serve` (the fault `server_stall`).
    func stallServer(_ stalled: Bool) {
        for server in servers { server.signal(stalled ? SIGSTOP : SIGCONT) }
    }

    /// The application's database, read by the report (processed Paddle events live there).
    func database() throws -> SQLiteDatabase {
        try SQLiteDatabase(path: directory.appendingPathComponent("envoy.db").path)
    }

    /// Stops every process and mock, and removes the directory unless `keep`.
    public func stop(keep: Bool = false) async {
        for server in servers {
            server.signal(SIGCONT)
            server.signal(SIGTERM)
        }
        for server in servers { _ = await server.wait(timeout: .seconds(5)) }
        for worker in workers.withLock({ $0 }).compactMap({ $0 }) {
            worker.signal(SIGTERM)
            _ = await worker.wait(timeout: .seconds(5))
        }
        redis?.pause(false)
        await redisProxy?.stop()
        await mailgun.stop()
        await paddle.stop()
        if !keep { try? FileManager.default.removeItem(at: directory) }
    }

    /// What the `envoy serve` instances printed (for a failed run's report).
    public var serverLog: String { servers.map(\.log).joined(separator: "\n") }
}

/// Why a run could not be made (exit 3); a struct, so that a new reason breaks no caller.
public struct SimError: Error, CustomStringConvertible {
    /// One line.
    public let description: String

    /// The stack did not start or broke.
    public static func stack(_ detail: String) -> SimError { SimError(description: "the stack failed: \(detail)") }
    /// Something else failed.
    public static func run(_ detail: String) -> SimError { SimError(description: detail) }
}
