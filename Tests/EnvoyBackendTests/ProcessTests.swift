import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import EnvoyBackend
import EnvoyFramework
import EnvoySim
import EnvoyTestSupport
import Logging
import Testing

/// The real `envoy` binary, built next to this test bundle.
typealias EnvoyProcess = ChildProcess

extension ChildProcess {
    /// Runs `envoy` with `arguments`.
    convenience init(_ arguments: [String], directory: URL, environment: [String: String]) throws {
        try self.init(
            binary: ChildProcess.sibling("envoy"), arguments: arguments, directory: directory, environment: environment)
    }

    static var binary: URL { sibling("envoy") }
}

@Suite("The envoy binary, for real: kills, restarts, start-up errors")
struct ProcessTests {
    let directory: URL
    let environment: [String: String]

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("envoy-proc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var environment = [
            "PORT": "0",
            "DATABASE_URL": try TestStack.databaseURL(in: directory),
            "MAIL_OUTBOX_DIR": directory.appendingPathComponent("outbox").path,
            "EMAIL_TEMPLATES_DIR": TestStack.repositoryRoot.appendingPathComponent("templates/email").path,
        ]
        // PostgreSQL requires a configured key (instances on several machines must share it).
        if SharedPostgres.backendTestsUsePostgres {
            environment["JWT_SECRET"] = "a-shared-secret-of-at-least-thirty-two-bytes"
        }
        self.environment = environment
    }

    /// Registers `email` at the server on `port` (password "correct horse").
    static func register(_ email: String, port: Int) async throws -> HTTPClientResponse {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/auth/register")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: #"{"email":"\#(email)","password":"correct horse","name":"Kim"}"#))
        let response = try await client.execute(request, timeout: .seconds(30))
        try await client.shutdown()
        return response
    }

    func outbox() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("outbox").path)) ?? [])
            .filter { $0.hasSuffix(".eml") }
    }

    @Test("the binary was built next to the tests")
    func binaryExists() {
        #expect(
            FileManager.default.isExecutableFile(atPath: EnvoyProcess.binary.path),
            "build with `swift build --build-tests` first")
    }

    @Test("a welcome email queued by a server killed with SIGKILL is delivered by a worker started afterwards")
    func queuedTaskSurvivesKill() async throws {
        let serve = try EnvoyProcess(["serve", "--no-worker"], directory: directory, environment: environment)
        let port = try #require(await serve.listeningPort(), "serve did not start: \(serve.log)")
        let response = try await Self.register("kill@example.com", port: port)
        #expect(response.status.code == 201)
        serve.signal(SIGKILL)
        #expect(await serve.wait() == SIGKILL)
        #expect(outbox().isEmpty)

        let worker = try EnvoyProcess(["worker", "--concurrency", "2"], directory: directory, environment: environment)
        let delivered = await eventually(timeout: .seconds(30)) { outbox().count == 1 }
        #expect(delivered, "worker log: \(worker.log)")
        worker.signal(SIGTERM)
        #expect(await worker.wait() == 0, "worker log: \(worker.log)")
        #expect(worker.log.contains("worker stopped"))
        #expect(!worker.log.contains("correct horse"))
    }

    @Test("envoy worker serves /health and /metrics: claiming while Redis answers, 503 while it is gone, back after")
    func workerHealthAndMetrics() async throws {
        let redis = try RedisServer()
        let metricsPort = try RedisServer.freePort()
        var environment = environment
        environment["REDIS_URL"] = redis.url
        environment["WORKER_METRICS_PORT"] = String(metricsPort)
        let worker = try EnvoyProcess(["worker", "--concurrency", "3"], directory: directory, environment: environment)
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = http.shutdown() }
        func get(_ path: String) async -> (status: Int, body: String)? {
            guard
                let response = try? await http.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(metricsPort)\(path)"), timeout: .seconds(5)),
                let body = try? await response.body.collect(upTo: 1 << 20)
            else { return nil }
            return (Int(response.status.code), String(buffer: body))
        }
        let claiming = await eventually(timeout: .seconds(20)) { await get("/health")?.status == 200 }
        #expect(claiming, "\(worker.log)")
        let health = await get("/health")?.body ?? ""
        #expect(health.contains(#""claiming":true"#) && health.contains(#""lanes":3"#), "\(health)")
        let metrics = await get("/metrics")?.body ?? ""
        #expect(metrics.contains("envoy_worker_lanes_busy") && metrics.contains("envoy_tasks_processed_total"))

        redis.kill()
        let down = await eventually(timeout: .seconds(20)) { await get("/health")?.status == 503 }
        #expect(down, "a worker that cannot claim says so")
        #expect(await get("/health")?.body.contains(#""claiming":false"#) == true)
        try redis.restart()
        let back = await eventually(timeout: .seconds(20)) { await get("/health")?.status == 200 }
        #expect(back)
        worker.signal(SIGTERM)
        #expect(await worker.wait() == 0, "\(worker.log)")
    }

    @Test("/metrics of envoy serve and envoy worker pass promtool check metrics: HELP on every family, process_*")
    func metricsByTheBook() async throws {
        let promtool = "/usr/bin/promtool"
        try #require(
            FileManager.default.isExecutableFile(atPath: promtool), "promtool: scripts/install-deps installs it")
        let metricsPort = try RedisServer.freePort()
        var environment = environment
        environment["WORKER_METRICS_PORT"] = String(metricsPort)
        let serve = try EnvoyProcess(["serve", "--no-worker"], directory: directory, environment: environment)
        let worker = try EnvoyProcess(["worker"], directory: directory, environment: environment)
        let port = try #require(await serve.listeningPort(), "serve did not start: \(serve.log)")
        #expect(try await Self.register("metrics@example.com", port: port).status.code == 201)
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = http.shutdown() }
        for (name, url) in [
            ("serve", "http://127.0.0.1:\(port)/metrics"), ("worker", "http://127.0.0.1:\(metricsPort)/metrics"),
        ] {
            var text = ""
            _ = await eventually(timeout: .seconds(20)) {
                guard let response = try? await http.execute(HTTPClientRequest(url: url), timeout: .seconds(5)),
                    let body = try? await response.body.collect(upTo: 4 << 20)
                else { return false }
                text = String(buffer: body)
                return response.status == .ok
            }
            let families = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map {
                $0.split(separator: " ")[2]
            }
            let helped = Set(
                text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
            #expect(!families.isEmpty && families.allSatisfy(helped.contains), "\(name): a family without HELP")
            for family in [
                "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                "process_max_fds", "process_start_time_seconds", "envoy_build_info",
            ] {
                #expect(text.contains("# TYPE \(family) "), "\(name) lacks \(family)")
            }
            let check = Process()
            check.executableURL = URL(fileURLWithPath: promtool)
            check.arguments = ["check", "metrics"]
            let input = Pipe()
            let output = Pipe()
            check.standardInput = input
            check.standardOutput = output
            check.standardError = output
            try check.run()
            input.fileHandleForWriting.write(Data(text.utf8))
            try input.fileHandleForWriting.close()
            let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            check.waitUntilExit()
            #expect(check.terminationStatus == 0 && said.isEmpty, "promtool on \(name)'s /metrics: \(said)")
        }
        // Request durations resolve the latency goals: the first bucket is 0.25 ms.
        #expect(try await Self.metrics(port: port).contains(#"envoy_http_request_duration_seconds_bucket{"#))
        #expect(try await Self.metrics(port: port).contains(#"le="0.00025"}"#))
        for process in [serve, worker] { process.signal(SIGTERM) }
        for process in [serve, worker] { #expect(await process.wait() == 0) }
        // Log lines start with an RFC 3339 UTC timestamp.
        let first = String(serve.log.split(separator: "\n").first ?? "")
        #expect(
            first.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "#, options: .regularExpression) != nil,
            "\(first)")
    }

    @Test("ACCESS_LOG=true with LOG_FORMAT=json: one JSON line per request, with its request id and numbers as numbers")
    func accessLog() async throws {
        var environment = environment
        environment["ACCESS_LOG"] = "true"
        environment["LOG_FORMAT"] = "json"
        let serve = try EnvoyProcess(["serve"], directory: directory, environment: environment)
        let port = try #require(await serve.listeningPort(), "serve did not start: \(serve.log)")
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = http.shutdown() }
        let response = try await http.execute(
            HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/user/profile?secret=hunter2"), timeout: .seconds(5))
        let id = try #require(response.headers.first(name: "X-Request-Id"))
        let logged = await eventually { serve.log.contains(id) }
        #expect(logged, "\(serve.log)")
        let line = try #require(
            serve.log.split(separator: "\n").first { $0.contains(id) && $0.contains(#""message":"request""#) })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["http.route"] as? String == "/v1/user/profile" && object["http.method"] as? String == "GET")
        #expect(object["http.status"] as? Int == 401 && object["duration_ms"] is Double, "\(object)")
        #expect(object["request.id"] as? String == id)
        #expect(!serve.log.contains("hunter2"), "no raw query in the access log")
        #expect((object["ts"] as? String)?.hasSuffix("Z") == true)
        serve.signal(SIGTERM)
        #expect(await serve.wait() == 0)
        let bad = try EnvoyProcess(["serve"], directory: directory, environment: ["ACCESS_LOG": "maybe"])
        #expect(await bad.wait() == 1 && bad.log.contains("ACCESS_LOG"))
    }

    static func metrics(port: Int) async throws -> String {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = http.shutdown() }
        let response = try await http.execute(
            HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(5))
        return String(buffer: try await response.body.collect(upTo: 4 << 20))
    }

    @Test("a worker whose metrics port is taken logs it and works on")
    func workerMetricsPortTaken() async throws {
        let taken = try RedisServer()  // something already listening on the port
        var environment = environment
        environment["WORKER_METRICS_PORT"] = String(taken.port)
        let worker = try EnvoyProcess(["worker"], directory: directory, environment: environment)
        let serve = try EnvoyProcess(["serve", "--no-worker"], directory: directory, environment: environment)
        let port = try #require(await serve.listeningPort(), "serve did not start: \(serve.log)")
        #expect(try await Self.register("port@example.com", port: port).status.code == 201)
        let delivered = await eventually(timeout: .seconds(30)) { outbox().count == 1 }
        #expect(delivered, "the worker still works: \(worker.log)")
        #expect(worker.log.contains("worker metrics on port \(taken.port) failed; running without it"))
        for process in [worker, serve] { process.signal(SIGTERM) }
        for process in [worker, serve] { #expect(await process.wait() == 0) }
    }

    @Test("a bad variable stops start-up with one line naming it, and no secret")
    func startupError() async throws {
        var environment = self.environment
        environment["REDIS_URL"] = "http://user:hunter2@example"
        let serve = try EnvoyProcess(["serve"], directory: directory, environment: environment)
        let status = await serve.wait()
        #expect(status != nil && status != 0)
        let lines = serve.log.split(separator: "\n")
        #expect(lines.count == 1, "\(serve.log)")
        #expect(serve.log.contains("REDIS_URL"))
        #expect(!serve.log.contains("hunter2"))
    }

    @Test("envoy queues reports the queue, and retry-dead answers")
    func queuesCommand() async throws {
        let stats = try EnvoyProcess(["queues", "stats", "--json"], directory: directory, environment: environment)
        #expect(await stats.wait() == 0, "\(stats.log)")
        #expect(stats.log.contains("["))
        let retry = try EnvoyProcess(["queues", "retry-dead"], directory: directory, environment: environment)
        #expect(await retry.wait() == 0)
        #expect(retry.log.contains("re-queued 0 task(s)"))
        let delete = try EnvoyProcess(["queues", "delete", "--all"], directory: directory, environment: environment)
        #expect(await delete.wait() == 0)
        #expect(delete.log.contains("deleted 0 dead task(s)"))
    }

    @Test("envoy queues matches the console: dead by type and error, show ID redacted, retry-dead --dry-run, delete")
    func queuesLikeTheConsole() async throws {
        var configuration = try AppConfiguration(environment: environment)
        configuration.databasePath = directory.appendingPathComponent("envoy.db").path
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let backend = try await Backend.make(configuration: configuration, logger: logger)
        let queue = backend.taskQueue
        var ids: [String] = []
        for (type, error) in [("send_report", "SMTP said 550"), ("sync_crm", "CRM timeout")] {
            let payload = #"{"password":"hunter2","to":"ann@example.com","count":2}"#
            _ = try await queue.enqueue(NewTask(type: type, queue: "ops", payload: Array(payload.utf8), maxAttempts: 1))
            let claimed = try #require(try await queue.claim(queues: ["ops"], lease: .seconds(30)))
            try await queue.bury(claimed, error: error)
            ids.append(claimed.id)
        }
        func run(_ arguments: [String]) async throws -> String {
            let process = try EnvoyProcess(["queues"] + arguments, directory: directory, environment: environment)
            #expect(await process.wait() == 0, "\(arguments): \(process.log)")
            return process.log
        }
        let byError = try await run(["dead", "--error", "timeout"])
        #expect(byError.contains(ids[1]) && !byError.contains(ids[0]), "\(byError)")
        let byType = try await run(["dead", "--type", "send_report", "--json"])
        #expect(byType.contains(ids[0]) && !byType.contains(ids[1]), "\(byType)")
        let shown = try await run(["show", ids[0]])
        #expect(shown.contains("state=dead") && shown.contains("SMTP said 550") && shown.contains("\"count\" : 2"))
        #expect(!shown.contains("hunter2") && !shown.contains("ann@example.com"), "\(shown)")
        let dry = try await run(["retry-dead", "--dry-run"])
        #expect(dry.contains("would re-queue 2 task(s)") && dry.contains(ids[0]) && dry.contains(ids[1]), "\(dry)")
        #expect(try await queue.task(id: ids[0])?.state == "dead", "a dry run changes nothing")
        #expect(try await run(["retry-dead", "--id", ids[0]]).contains("re-queued 1 task(s)"))
        #expect(try await queue.task(id: ids[0])?.state == "ready")
        #expect(try await run(["delete", "--id", ids[1]]).contains("deleted 1 dead task(s)"))
        #expect(try await queue.task(id: ids[1]) == nil)
        let missing = try EnvoyProcess(
            ["queues", "show", "no-such-id"], directory: directory, environment: environment)
        #expect(await missing.wait() != 0 && missing.log.contains("no task no-such-id"))
    }
}

extension ProcessTests {
    /// CPU seconds `pid` has used (user + system), from `/proc`.
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    @Test(
        "with 330 connections held against 300 descriptors, serve burns no CPU, answers once they go, and stops on SIGTERM"
    )
    func descriptorExhaustion() async throws {
        var environment = self.environment
        environment["HTTP_HEADER_TIMEOUT"] = "3"
        let serve = try ChildProcess(
            binary: URL(fileURLWithPath: "/bin/sh"),
            arguments: ["-c", #"ulimit -n 300 && exec "$0" serve"#, EnvoyProcess.binary.path], directory: directory,
            environment: environment)
        let port = try #require(await serve.listeningPort(), "serve did not start: \(serve.log)")
        var held: [RawConnection] = []
        for _ in 0..<330 { if let connection = try? await RawConnection.open(port: port) { held.append(connection) } }
        #expect(held.count == 330)
        try await Task.sleep(for: .milliseconds(500))
        let before = try #require(Self.cpuSeconds(serve.pid))
        try await Task.sleep(for: .seconds(2))
        let used = try #require(Self.cpuSeconds(serve.pid)) - before
        #expect(used < 0.3, "serve used \(used) s of CPU in 2 s while at its connection limit")
        // The held connections never send a request: the header timeout frees them, and a new client is answered.
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let response = try await client.execute(
            HTTPClientRequest(url: "http://127.0.0.1:\(port)/health"), timeout: .seconds(15))
        try await client.shutdown()
        #expect(response.status.code == 200)
        serve.signal(SIGTERM)
        #expect(await serve.wait(timeout: .seconds(10)) == 0, "\(serve.log)")
        #expect(!serve.log.contains("CONTINUATION MISUSE"), "\(serve.log)")
        for connection in held { connection.close() }
    }
}

extension ProcessTests {
    @Test(
        "a server SIGKILLed during a sign-up flood leaves every account with its welcome email, and no email without one"
    )
    func atomicSignUp() async throws {
        var environment = self.environment
        environment["BCRYPT_COST"] = "4"
        let policies = directory.appendingPathComponent("no-limits.json")
        try Data("[]".utf8).write(to: policies)
        environment["RATE_LIMITS_FILE"] = policies.path
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var attempted: [String] = []
        for round in 0..<2 {
            let serve = try EnvoyProcess(["serve", "--no-worker"], directory: directory, environment: environment)
            let port = try #require(await serve.listeningPort(), "serve did not start: \(serve.log)")
            let emails = (0..<400).map { "flood-\(round)-\($0)@example.com" }
            attempted += emails
            await withTaskGroup(of: Void.self) { group in
                for lane in 0..<8 {
                    group.addTask {
                        for email in emails[(lane * 50)..<((lane + 1) * 50)] {
                            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/auth/register")
                            request.method = .POST
                            request.body = .bytes(
                                ByteBuffer(string: #"{"email":"\#(email)","password":"correct horse","name":"F"}"#))
                            guard (try? await client.execute(request, timeout: .seconds(5))) != nil else { return }
                        }
                    }
                }
                try? await Task.sleep(for: .milliseconds(round == 0 ? 400 : 250))
                serve.signal(SIGKILL)
            }
            #expect(await serve.wait() == SIGKILL)
        }
        // Which accounts exist: a login for each attempted address, on a fresh server.
        let serve = try EnvoyProcess(["serve", "--no-worker"], directory: directory, environment: environment)
        let port = try #require(await serve.listeningPort(), "serve did not start: \(serve.log)")
        var registered = Set<String>()
        for email in attempted {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/auth/login")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: #"{"email":"\#(email)","password":"correct horse"}"#))
            if try await client.execute(request, timeout: .seconds(10)).status == .ok { registered.insert(email) }
        }
        serve.signal(SIGTERM)
        _ = await serve.wait()
        #expect(registered.count > 0 && registered.count < attempted.count, "the kills landed mid-flood")

        let worker = try EnvoyProcess(["worker", "--concurrency", "4"], directory: directory, environment: environment)
        let welcomed = { () -> Set<String> in
            let folder = directory.appendingPathComponent("outbox")
            return Set(
                outbox().compactMap { name in
                    let text = (try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)) ?? ""
                    return attempted.first { text.contains("To: \($0)") }
                })
        }
        _ = await eventually(timeout: .seconds(60)) { welcomed().count >= registered.count }
        try await Task.sleep(for: .milliseconds(500))  // nothing more arrives
        let final = welcomed()
        #expect(
            registered.subtracting(final).isEmpty, "\(registered.subtracting(final).count) account(s) without a welcome"
        )
        #expect(
            final.subtracting(registered).isEmpty,
            "\(final.subtracting(registered).count) welcome(s) without an account")
        worker.signal(SIGTERM)
        _ = await worker.wait()
        try await client.shutdown()
    }
}

extension ProcessTests {
    @Test("serve, worker and queues copied out of the checkout run in an empty folder, with the built-in templates")
    func runsFromAnywhere() async throws {
        let elsewhere = directory.appendingPathComponent("elsewhere")
        let empty = directory.appendingPathComponent("empty")
        for folder in [elsewhere, empty] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        let binary = elsewhere.appendingPathComponent("envoy")
        // Copied by cp in a process of its own: a copy written here keeps a write descriptor open that a process
        // spawned meanwhile by another test inherits, and executing the copy then fails with "Text file busy".
        let copy = try ChildProcess(
            binary: URL(fileURLWithPath: "/bin/cp"), arguments: [EnvoyProcess.binary.path, binary.path],
            directory: directory)
        #expect(await copy.wait() == 0, "\(copy.log)")
        var environment = ["PORT": "0", "BCRYPT_COST": "4"]
        if SharedPostgres.backendTestsUsePostgres {
            environment["DATABASE_URL"] = self.environment["DATABASE_URL"]
            environment["JWT_SECRET"] = self.environment["JWT_SECRET"]
        }

        let queues = try ChildProcess(
            binary: binary, arguments: ["queues", "stats", "--json"], directory: empty, environment: environment)
        #expect(await queues.wait() == 0, "\(queues.log)")
        #expect(queues.log.contains("queue: "), "it names the store it read: \(queues.log)")
        if !SharedPostgres.backendTestsUsePostgres {
            let left = try FileManager.default.contentsOfDirectory(atPath: empty.path)
            #expect(left.isEmpty, "envoy queues created \(left)")
        }

        let serve = try ChildProcess(binary: binary, arguments: ["serve"], directory: empty, environment: environment)
        let port = try #require(await serve.listeningPort(), "serve did not start: \(serve.log)")
        #expect(try await Self.register("far@example.com", port: port).status.code == 201, "\(serve.log)")
        let outbox = empty.appendingPathComponent("mail-outbox")
        let welcomed = await eventually(timeout: .seconds(20)) {
            ((try? FileManager.default.contentsOfDirectory(atPath: outbox.path)) ?? []).contains {
                $0.hasSuffix(".eml")
            }
        }
        #expect(welcomed, "no welcome email from the built-in template: \(serve.log)")
        serve.signal(SIGTERM)
        #expect(await serve.wait() == 0)

        let worker = try ChildProcess(binary: binary, arguments: ["worker"], directory: empty, environment: environment)
        // SIGTERM once it runs (before its signal handlers are installed, SIGTERM would simply kill it).
        #expect(await eventually(timeout: .seconds(20)) { worker.log.contains("worker started") }, "\(worker.log)")
        worker.signal(SIGTERM)
        #expect(await worker.wait() == 0, "\(worker.log)")
    }

    @Test("a missing or unreadable EMAIL_TEMPLATES_DIR stops start-up with one line naming it")
    func templatesDirectory() async throws {
        let unreadable = directory.appendingPathComponent("no-templates")
        try FileManager.default.createDirectory(at: unreadable, withIntermediateDirectories: true)
        for folder in [directory.appendingPathComponent("missing").path, unreadable.path] {
            var environment = self.environment
            environment["EMAIL_TEMPLATES_DIR"] = folder
            let serve = try EnvoyProcess(["serve"], directory: directory, environment: environment)
            let status = await serve.wait()
            #expect(status != nil && status != 0)
            let lines = serve.log.split(separator: "\n")
            #expect(lines.count == 1 && serve.log.contains("EMAIL_TEMPLATES_DIR"), "\(serve.log)")
        }
    }
}
