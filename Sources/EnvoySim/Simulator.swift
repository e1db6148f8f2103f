import AsyncHTTPClient
import EnvoyBackend
import EnvoyFramework
import EnvoyPlugins
import Foundation
import Histogram
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Replays a scenario against the real stack and builds its report.
public struct Simulator: Sendable {
    /// How a run is made.
    public struct Options: Sendable {
        /// The `envoy` executable to start as `serve` and `worker`.
        public var envoy: URL
        /// The email templates directory the stack uses; nil: the ones built into `envoy`.
        public var templates: String?
        /// Run the `--quick` version of the scenario.
        public var quick: Bool
        /// Print a progress line (on a terminal).
        public var progress: Bool
        /// Keep the run's directory (database, logs) for inspection.
        public var keepDirectory: Bool
        /// The generator is behind its schedule when its p99 lag exceeds this (the run is then invalid, exit 2).
        public var maxScheduleLag: Duration

        /// Options with the given values.
        public init(
            envoy: URL, templates: String? = nil, quick: Bool = false, progress: Bool = false,
            keepDirectory: Bool = false,
            maxScheduleLag: Duration = .milliseconds(50)
        ) {
            self.envoy = envoy
            self.templates = templates
            self.quick = quick
            self.progress = progress
            self.keepDirectory = keepDirectory
            self.maxScheduleLag = maxScheduleLag
        }
    }

    let options: Options

    /// A simulator making runs with `options`.
    public init(options: Options) {
        self.options = options
    }

    /// Starts the stack, replays `scenario`, drains its tasks, stops everything, and returns the report.
    public func run(_ original: Scenario) async throws -> Report {
        let scenario = options.quick ? original.quickened : original
        return try await withStack(scenario) { stack, client in try await replay(scenario, on: stack, client: client) }
    }

    /// Runs `body` with the scenario's stack and an HTTP client; stops both afterwards (keeping the directory when
    /// `body` failed, for inspection).
    func withStack<T>(_ scenario: Scenario, _ body: (SimStack, HTTPClient) async throws -> T) async throws -> T {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let stack = try await SimStack.start(
                scenario.stack, proxyRedis: scenario.faults.contains(where: \.needsRedisProxy), envoy: options.envoy,
                templates: options.templates, client: client)
            do {
                let result = try await body(stack, client)
                await stack.stop(keep: options.keepDirectory)
                try await client.shutdown()
                return result
            } catch {
                await stack.stop(keep: true)
                throw error
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Users, the policies in force, and a driver for the scenario's requests (a Redis client for bulk email).
    func prepare(_ scenario: Scenario, on stack: SimStack, client: HTTPClient) async throws -> (Driver, RedisClient?) {
        let users = try await register(scenario.users, on: stack, client: client)
        let policies =
            (try? AppConfiguration(environment: stack.environment).rateLimitPolicies) ?? RateLimitPolicy.defaults
        var emails: EmailQueue?
        var redisClient: RedisClient?
        if let redisURL = stack.redisURL {
            var logger = Logger(label: "envoy.sim")
            logger.logLevel = .critical
            let connection = try RedisClient(
                configuration: .init(endpoint: try RedisEndpoint(url: redisURL), commandTimeout: .seconds(2)),
                logger: logger)
            redisClient = connection
            let templates =
                if let directory = options.templates {
                    try await EmailTemplates.load(directory: directory)
                } else {
                    try EmailTemplates.builtIn()
                }
            emails = EmailQueue(
                queue: RedisTaskQueue(client: connection, prefix: stack.environment["REDIS_KEY_PREFIX"] ?? "envoy"),
                composer: EmailComposer(templates: templates, sender: EmailSender(address: "noreply@envoyou.com")))
        }
        let driver = Driver(
            scenario: scenario, stack: stack, users: users, policies: policies, emails: emails)
        driver.accounting.withLock { accounting in
            for user in users { accounting.expectedEmails[user.email] = user.registeredAt }
        }
        return (driver, redisClient)
    }

    /// Sends every arrival at its intended time (from `origin`), recording outcomes; true if the in-flight limit
    /// was hit (the generator fell behind).
    static func drive(
        _ arrivals: [Arrival], phases: [String], driver: Driver, recorder: Recorder, origin: ContinuousClock.Instant
    ) async -> Bool {
        let maxInFlight = 4096
        let inFlight = InFlight()
        var overloaded = false
        await withDiscardingTaskGroup { group in
            for arrival in arrivals {
                let target = origin + .seconds(arrival.at)
                if ContinuousClock.now < target - .microseconds(500) {
                    try? await Task.sleep(until: target, clock: .continuous)
                }
                if inFlight.count.load(ordering: .relaxed) >= maxInFlight {
                    overloaded = true
                    while inFlight.count.load(ordering: .relaxed) >= maxInFlight {
                        try? await Task.sleep(for: .milliseconds(1))
                    }
                }
                recorder.recordLag((ContinuousClock.now - target).inSeconds)
                inFlight.count.add(1, ordering: .relaxed)
                group.addTask {
                    let outcome = await driver.execute(arrival, origin: origin)
                    recorder.record(outcome, phase: phases[arrival.phase])
                    inFlight.count.subtract(1, ordering: .relaxed)
                }
            }
        }
        return overloaded
    }

    private func replay(_ scenario: Scenario, on stack: SimStack, client: HTTPClient) async throws -> Report {
        let startedAt = Date()
        let (driver, redisClient) = try await prepare(scenario, on: stack, client: client)
        defer { redisClient?.shutdown() }
        let before = try await ServerMetrics.scrape(stack.baseURLs, client: client)
        let recorder = Recorder()
        let arrivals = Schedule.arrivals(for: scenario.phases, seed: scenario.seed)
        let origin = ContinuousClock.now
        let faults = FaultInjector(scenario.faults, stack: stack)
        let faultTask = Task { await faults.run(origin: origin) }
        let progress =
            options.progress ? Task { await Self.showProgress(recorder, scenario: scenario, origin: origin) } : nil
        let overloaded = await Self.drive(
            arrivals, phases: scenario.phases.map(\.name), driver: driver, recorder: recorder, origin: origin)
        let loadEnd = (ContinuousClock.now - origin).inSeconds
        await faultTask.value
        progress?.cancel()
        if options.progress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        let tasks = try await drain(scenario, stack: stack, driver: driver)
        let policies = driver.policies
        let after = try await ServerMetrics.scrape(stack.baseURLs, client: client)
        return ReportBuilder(
            scenario: scenario, quick: options.quick, startedAt: startedAt, recorder: recorder, policies: policies,
            tasks: tasks, server: after.delta(from: before), faults: faults.timeline, loadEnd: loadEnd,
            overloaded: overloaded, maxLag: options.maxScheduleLag
        ).build()
    }

    /// Registers and logs in `users.count` users, 8 at a time, each from its own address.
    private func register(_ users: Scenario.Users, on stack: SimStack, client: HTTPClient) async throws -> [SimUser] {
        try await withThrowingTaskGroup(of: SimUser.self) { group in
            var made: [SimUser] = []
            for index in 0..<users.count {
                if index >= 8, let user = try await group.next() { made.append(user) }
                group.addTask {
                    let ip = "10.\(index / 65536 % 256).\(index / 256 % 256).\(index % 256)"
                    let email = "user\(index)@sim.envoy.test"
                    let registered = try await Self.post(
                        stack.baseURL + "/v1/auth/register",
                        ["email": email, "password": users.password, "name": "User \(index)"],
                        ip: ip, client: client)
                    guard let id = registered["id"] as? String else {
                        throw SimError.run("registering \(email) failed: \(registered)")
                    }
                    let registeredAt = Date()
                    let login = try await Self.post(
                        stack.baseURL + "/v1/auth/login", ["email": email, "password": users.password], ip: ip,
                        client: client)
                    guard let token = login["access_token"] as? String else {
                        throw SimError.run("logging in \(email) failed")
                    }
                    return SimUser(id: id, email: email, token: token, ip: ip, registeredAt: registeredAt)
                }
            }
            for try await user in group { made.append(user) }
            return made
        }
    }

    private static func post(_ url: String, _ body: [String: String], ip: String, client: HTTPClient) async throws
        -> [String: Any]
    {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-Forwarded-For", value: ip)
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any]) ?? [
            "status": Int(response.status.code)
        ]
    }

    /// Waits (up to `stack.drainSeconds`) until every accepted email reached the mock Mailgun and every accepted
    /// Paddle event was processed; then counts what was delivered, lost and duplicated.
    private func drain(_ scenario: Scenario, stack: SimStack, driver: Driver) async throws -> TaskFigures {
        let database = try stack.database()
        let deadline = ContinuousClock.now + .seconds(scenario.stack.drainSeconds)
        var figures = TaskFigures()
        repeat {
            let accounting = driver.accounting.withLock { $0 }
            let processed = try await database.query(
                "SELECT event_id FROM paddle_events WHERE event_id LIKE 'evt_sim_%'"
            ).map { row -> String in try row["event_id"] }
            figures = TaskFigures(
                accounting: accounting, messages: stack.mailgun.messages, processedEvents: Set(processed))
            if figures.lost == 0 { break }
            try await Task.sleep(for: .milliseconds(250))
        } while ContinuousClock.now < deadline
        return figures
    }

    /// A progress line on stderr, once a second.
    private static func showProgress(_ recorder: Recorder, scenario: Scenario, origin: ContinuousClock.Instant) async {
        let total = scenario.phases.reduce(0) { $0 + $1.duration }
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let elapsed = (ContinuousClock.now - origin).inSeconds
            var start = 0.0
            var phase = scenario.phases.last?.name ?? ""
            for candidate in scenario.phases {
                if elapsed < start + candidate.duration {
                    phase = candidate.name
                    break
                }
                start += candidate.duration
            }
            let (sent, errors, p99) = recorder.state.withLock { state -> (Int, Int, Double) in
                let cell = state.cells[Recorder.key("*", "*")]
                return (cell?.sent ?? 0, cell?.failed ?? 0, Double(cell?.corrected.valueAtPercentile(99) ?? 0) / 1000)
            }
            let line = String(
                format: "\r\u{1B}[K%@ %@  %.0f/%.0f s  sent %d  errors %d  p99 %.1f ms", scenario.name, phase, elapsed,
                total,
                sent, errors, p99)
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}

/// Requests sent and not yet answered.
final class InFlight: Sendable {
    let count = Atomic(0)
}
