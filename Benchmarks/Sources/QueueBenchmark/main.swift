// No-op tasks through the Redis queue: enqueue N, then drain them with a worker of C lanes; prints tasks/s and
// Redis round trips per task (from the client's point of view: scripts and commands sent, INFO excluded).
// Run through Benchmarks/queue.sh, which measures Sidekiq the same way in the same run.
// With a fourth argument `email`, the tasks are `send_email` sent through MailgunMailer to the mock Mailgun (in
// this process), timed until the mock has received every message.
// `QueueBenchmark seed REDIS_URL PREFIX READY DEAD` fills the queue `bench` under PREFIX with READY runnable and DEAD
// dead-lettered tasks (for Benchmarks/console.sh) and exits.
import EnvoyFramework
import EnvoyPlugins
import EnvoySim
import Foundation
import Logging
import Metrics
import ServiceLifecycle

struct Noop: TaskHandler {
    struct Payload: Codable, Sendable { var n: Int }
    static let taskType = "noop"
    static let queue = "bench"
    func handle(_ payload: Payload, context: TaskContext) async throws {}
}

func commandCalls(_ client: RedisClient) async throws -> Int {
    let info = try await client.send("INFO", "commandstats").string ?? ""
    return info.split(whereSeparator: \.isNewline).reduce(0) { total, line in
        // Commands run inside scripts are counted too; count what crossed the network: top-level calls only.
        guard line.hasPrefix("cmdstat_"), let range = line.range(of: "calls=") else { return total }
        let name = line.dropFirst("cmdstat_".count).prefix { $0 != ":" }
        let insideScripts: Set<Substring> = [
            "time", "zrangebyscore", "zrem", "lpush", "hget", "hdel", "zadd", "rpush", "rpop", "hset", "hincrby",
            "ltrim", "set", "zcard", "info",
        ]
        guard !insideScripts.contains(name) else { return total }
        return total + (Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0)
    }
}

@main
struct QueueBenchmark {
    static func main() async throws {
        let arguments = CommandLine.arguments
        if arguments.count == 6, arguments[1] == "seed", let ready = Int(arguments[4]), let dead = Int(arguments[5]) {
            return try await seed(url: arguments[2], prefix: arguments[3], ready: ready, dead: dead)
        }
        guard arguments.count >= 4, let count = Int(arguments[2]), let lanes = Int(arguments[3]) else {
            print("usage: QueueBenchmark REDIS_URL TASKS CONCURRENCY [email]")
            return
        }
        let email = arguments.count > 4 && arguments[4] == "email"
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let client = try RedisClient(
            configuration: .init(endpoint: try RedisEndpoint(url: arguments[1]), commandTimeout: .seconds(10)),
            logger: logger)
        let prefix = "bench\(UInt32.random(in: 0...UInt32.max))"
        let queue = RedisTaskQueue(client: client, prefix: prefix)
        var registry = TaskRegistry()
        var queues = [Noop.queue]
        var mock: MockMailgun?
        if email {
            let mailgun = try await MockMailgun.start()
            mock = mailgun
            let mailer = MailgunMailer(
                configuration: .init(apiKey: mailgun.apiKey, domain: "bench.envoy.test", baseURL: mailgun.baseURL))
            let composer = EmailComposer(
                templates: try EmailTemplates(sources: [:]), sender: .init(address: "noreply@envoyou.com"))
            registry.register(SendEmail(mailer: mailer, composer: composer))
            queues = [SendEmail.queue]
        } else {
            registry.register(Noop())
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<50 {
                group.addTask {
                    for n in stride(from: lane, to: count, by: 50) {
                        if email {
                            try await queue.enqueue(
                                SendEmail.self,
                                .init(to: ["user\(n)@bench.envoy.test"], subject: "Hello", body: "Hi \(n)"))
                        } else {
                            try await queue.enqueue(Noop.self, .init(n: n))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let worker = TaskWorker(
            queue: queue, registry: registry, configuration: .init(concurrency: lanes, queues: queues),
            logger: logger,
            metrics: NOOPMetricsHandler.instance)
        let before = try await commandCalls(client)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            let services = ServiceGroup(services: [worker], logger: logger)
            group.addTask { try await services.run() }
            while true {
                if let mock {
                    if mock.messages.count >= count { break }
                } else {
                    let stats = try await queue.stats().first { $0.queue == Noop.queue }
                    if let stats, stats.ready + stats.inFlight + stats.delayed == 0 { break }
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            let elapsed = ContinuousClock.now - start
            let seconds = elapsed.inSeconds
            let calls = try await commandCalls(client)
            let kind = email ? "send_email tasks delivered to the mock Mailgun" : "no-op tasks"
            print(
                "envoy: \(count) \(kind), \(lanes) lanes: \(Int(Double(count) / seconds)) tasks/s; "
                    + String(format: "%.2f", Double(calls - before) / Double(count)) + " Redis round trips per task")
            if let mock {
                print(
                    "  mock Mailgun: \(mock.messages.count) messages, \(Set(mock.messages.flatMap(\.to)).count) distinct recipients"
                )
                await mock.stop()
            }
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        client.shutdown()
    }

    /// Enqueues `ready + dead` tasks, then claims and buries `dead` of them, 50 at a time.
    static func seed(url: String, prefix: String, ready: Int, dead: Int) async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let client = try RedisClient(
            configuration: .init(endpoint: try RedisEndpoint(url: url), commandTimeout: .seconds(10)), logger: logger)
        let queue = RedisTaskQueue(client: client, prefix: prefix)
        let total = ready + dead
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<50 {
                group.addTask {
                    for n in stride(from: lane, to: total, by: 50) { try await queue.enqueue(Noop.self, .init(n: n)) }
                    for _ in stride(from: lane, to: dead, by: 50) {
                        guard let task = try await queue.claim(queues: [Noop.queue], lease: .seconds(600)) else { return }
                        try await queue.bury(task, error: "SMTP said 550: mailbox unavailable (seeded \(task.id.prefix(4)))")
                    }
                }
            }
            try await group.waitForAll()
        }
        let stats = try await queue.stats()
        print("seeded: \(stats.map { "\($0.queue) ready \($0.ready), dead \($0.dead)" }.joined(separator: "; "))")
        client.shutdown()
    }
}
