import EnvoyFramework
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import Testing
import EnvoyTestSupport

/// A queue on a fresh database (SQLite file or PostgreSQL database), with a controllable clock.
struct QueueFixture {
    let kind: TestDatabase
    let location: String
    let clock = Shared(1_000_000.0)

    init(_ kind: TestDatabase = .sqlite) throws {
        self.kind = kind
        location = try kind.freshLocation()
    }

    /// A connection to the fixture's database, migrated.
    func database() async throws -> any SQLDatabase {
        try await kind.open(location, migrations: SQLTaskQueue.migrations)
    }

    /// A queue on the fixture's clock.
    func open() async throws -> SQLTaskQueue {
        let clock = self.clock
        return SQLTaskQueue(
            database: try await database(), deduplicationWindow: .seconds(60), now: { clock.value.withLock { $0 } })
    }

    /// A queue on the system clock (for workers, which sleep in real time).
    func openOnSystemClock() async throws -> SQLTaskQueue {
        SQLTaskQueue(database: try await database())
    }

    func advance(_ seconds: Double) { clock.value.withLock { $0 += seconds } }

    static func task(_ n: Int, type: String = "t", maxAttempts: Int = 3, dedup: String? = nil) -> NewTask {
        NewTask(
            type: type, queue: "q", payload: Array("{\"n\":\(n)}".utf8), maxAttempts: maxAttempts,
            deduplicationKey: dedup)
    }
}

@Suite("SQLTaskQueue on SQLite and PostgreSQL: durable, leased, fenced")
struct TaskQueueTests {
    @Test("a task enqueued is still there after the queue is closed and reopened", arguments: TestDatabase.allCases)
    func durable(_ kind: TestDatabase) async throws {
        let fixture = try QueueFixture(kind)
        do {
            let queue = try await fixture.open()
            _ = try await queue.enqueue(QueueFixture.task(1))
        }
        let reopened = try await fixture.open()
        let claimed = try #require(try await reopened.claim(queues: ["q"], lease: .seconds(30)))
        #expect(String(decoding: claimed.payload, as: UTF8.self) == #"{"n":1}"#)
        #expect(claimed.attempt == 1)
    }

    @Test(
        "a claimed task is invisible until its lease expires, then comes back to another worker",
        arguments: TestDatabase.allCases)
    func leaseExpiry(_ kind: TestDatabase) async throws {
        let fixture = try QueueFixture(kind)
        let queue = try await fixture.open()
        _ = try await queue.enqueue(QueueFixture.task(1))
        let first = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        #expect(try await queue.claim(queues: ["q"], lease: .seconds(30)) == nil)
        fixture.advance(31)
        let second = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        #expect(second.id == first.id)
        #expect(second.attempt == 2)
        // The first holder's late acknowledgement is refused: its token is stale.
        await #expect(throws: LeaseLost.self) { try await queue.complete(first) }
        #expect(try await queue.renew(first, lease: .seconds(30)) == false)
        try await queue.complete(second)
        #expect(try await queue.stats().first?.inFlight ?? 0 == 0)
    }

    @Test(
        "a task whose worker died on its last attempt is dead-lettered with the reason",
        arguments: TestDatabase.allCases)
    func deadAfterLostLeases(_ kind: TestDatabase) async throws {
        let fixture = try QueueFixture(kind)
        let queue = try await fixture.open()
        _ = try await queue.enqueue(QueueFixture.task(1, maxAttempts: 2))
        for _ in 0..<2 {
            _ = try #require(try await queue.claim(queues: ["q"], lease: .seconds(5)))
            fixture.advance(6)
        }
        #expect(try await queue.claim(queues: ["q"], lease: .seconds(5)) == nil)
        let dead = try await queue.deadTasks(limit: 10)
        #expect(dead.count == 1)
        #expect(dead.first?.history.count == 2)
        #expect(dead.first?.reason.contains("lease expired") == true)
    }

    @Test(
        "retry waits for its delay; release does not count the attempt; bury keeps the history; retry-dead revives",
        arguments: TestDatabase.allCases)
    func settling(_ kind: TestDatabase) async throws {
        let fixture = try QueueFixture(kind)
        let queue = try await fixture.open()
        _ = try await queue.enqueue(QueueFixture.task(1))
        var claimed = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        try await queue.retry(claimed, after: .seconds(10), error: "boom")
        #expect(try await queue.claim(queues: ["q"], lease: .seconds(30)) == nil)
        #expect(
            try await queue.stats() == [
                QueueStats(queue: "q", ready: 0, delayed: 1, inFlight: 0, dead: 0, oldestReadyAge: 0)
            ])
        fixture.advance(10)
        claimed = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        #expect(claimed.attempt == 2)
        try await queue.release(claimed)
        claimed = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        #expect(claimed.attempt == 2)
        try await queue.bury(claimed, error: "permanent: bad address")
        let dead = try await queue.deadTasks(limit: 10)
        #expect(dead.first?.history == ["attempt 1: boom", "attempt 2: permanent: bad address"])
        #expect(try await queue.retryDead(ids: nil) == 1)
        let revived = try #require(try await queue.claim(queues: ["q"], lease: .seconds(30)))
        #expect(revived.attempt == 1)
        // Deleting a dead task removes it for good; a live one is never deleted.
        try await queue.bury(revived, error: "permanent: again")
        _ = try await queue.enqueue(QueueFixture.task(2))
        #expect(try await queue.deleteDead(ids: ["no-such-id"]) == 0)
        #expect(try await queue.deleteDead(ids: [revived.id]) == 1)
        #expect(try await queue.deadTasks(limit: 10).isEmpty)
        #expect(try await queue.stats().first?.ready == 1)
        #expect(try await queue.deleteDead(ids: nil) == 0)
    }

    @Test("a deduplication key admits one task while it is remembered", arguments: TestDatabase.allCases)
    func deduplication(_ kind: TestDatabase) async throws {
        let fixture = try QueueFixture(kind)
        let queue = try await fixture.open()
        guard case .enqueued = try await queue.enqueue(QueueFixture.task(1, dedup: "evt_1")) else {
            Issue.record("first enqueue was not stored")
            return
        }
        #expect(try await queue.enqueue(QueueFixture.task(2, dedup: "evt_1")) == .duplicate)
        fixture.advance(61)
        guard case .enqueued = try await queue.enqueue(QueueFixture.task(3, dedup: "evt_1")) else {
            Issue.record("key should have been forgotten")
            return
        }
    }

    @Test("queues are kept apart and claimed oldest first", arguments: TestDatabase.allCases)
    func ordering(_ kind: TestDatabase) async throws {
        let fixture = try QueueFixture(kind)
        let queue = try await fixture.open()
        for n in 0..<3 {
            _ = try await queue.enqueue(QueueFixture.task(n))
            fixture.advance(1)
        }
        _ = try await queue.enqueue(NewTask(type: "t", queue: "other", payload: [], maxAttempts: 1))
        var seen: [String] = []
        while let task = try await queue.claim(queues: ["q"], lease: .seconds(30)) {
            seen.append(String(decoding: task.payload, as: UTF8.self))
        }
        #expect(seen == [#"{"n":0}"#, #"{"n":1}"#, #"{"n":2}"#])
        #expect(try await queue.claim(queues: ["other"], lease: .seconds(30)) != nil)
    }

    @Test(
        "four queues on their own connections claim 200 tasks at once: each task exactly once, none left",
        arguments: TestDatabase.allCases)
    func concurrentClaims(_ kind: TestDatabase) async throws {
        let fixture = try QueueFixture(kind)
        let producer = try await fixture.open()
        for n in 0..<200 { _ = try await producer.enqueue(QueueFixture.task(n)) }
        var queues: [SQLTaskQueue] = []
        for _ in 0..<4 { queues.append(try await fixture.open()) }
        let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
            for queue in queues {
                for _ in 0..<3 {
                    group.addTask {
                        var mine: [String] = []
                        while let task = try await queue.claim(queues: ["q"], lease: .seconds(30)) {
                            mine.append(task.id)
                            try await queue.complete(task)
                        }
                        return mine
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(claimed.count == 200)
        #expect(Set(claimed).count == 200)
        #expect(try await producer.stats().allSatisfy { $0.ready == 0 && $0.inFlight == 0 })
    }
}

struct Echo: TaskHandler {
    struct Payload: Codable, Sendable { var n: Int }
    static let taskType = "echo"
    static let queue = "q"
    static let retryPolicy = RetryPolicy(
        maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5), timeout: .seconds(5))
    let seen: Shared<[Int]>
    let failuresBeforeSuccess: Int
    let attempts = Shared([Int: Int]())

    func handle(_ payload: Payload, context: TaskContext) async throws {
        let attempt = attempts.value.withLock {
            $0[payload.n, default: 0] += 1; return $0[payload.n]!
        }
        if payload.n < 0 { throw TaskFailure.permanent("negative numbers are refused") }
        if attempt <= failuresBeforeSuccess { throw TaskFailure.retryAfter(.milliseconds(1), "flaky") }
        seen.value.withLock { $0.append(payload.n) }
    }
}

@Suite("TaskWorker: runs, retries, dead-letters, shuts down gracefully")
struct TaskWorkerTests {
    @Test("every task completes despite transient failures; permanent failures go straight to dead letters")
    func processing() async throws {
        // Real time for the worker: the system clock.
        let queue = try await (try QueueFixture()).openOnSystemClock()
        let seen = Shared([Int]())
        var registry = TaskRegistry()
        registry.register(Echo(seen: seen, failuresBeforeSuccess: 2))
        for n in 0..<20 { try await queue.enqueue(Echo.self, .init(n: n)) }
        try await queue.enqueue(Echo.self, .init(n: -1))
        _ = try await queue.enqueue(NewTask(type: "unknown", queue: "q", payload: Array("{}".utf8), maxAttempts: 3))
        let worker = TaskWorker(
            queue: queue, registry: registry,
            configuration: .init(
                concurrency: 4, queues: ["q"], pollInterval: .milliseconds(20), unknownTypeDelay: .milliseconds(50)),
            logger: quietLogger, metrics: NOOPMetricsHandler.instance)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let serviceGroup = ServiceGroup(services: [worker], logger: quietLogger)
            group.addTask { try await serviceGroup.run() }
            let done = await eventually { seen.value.withLock { $0.count } == 20 }
            #expect(done)
            let deadDone = await eventually { (try? await queue.deadTasks(limit: 10).count) == 2 }
            #expect(deadDone)
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        #expect(Set(seen.value.withLock { $0 }) == Set(0..<20))
        let dead = try await queue.deadTasks(limit: 10)
        #expect(dead.contains { $0.reason.contains("negative numbers are refused") && $0.attempts == 1 })
        // A type no handler knows is handed back, not dead on its first run: dead once its 3 attempts are spent.
        let unknown = try #require(dead.first { $0.type == "unknown" })
        #expect(unknown.attempts == 3)
        #expect(unknown.reason.contains("no handler is registered") && unknown.reason.contains("attempts exhausted"))
        #expect(unknown.history.filter { $0.contains("no handler") }.count == 3, "\(unknown.history)")
    }

    @Test(
        "a worker announces itself while it runs (host, pid, lanes, tasks done) and is gone once it stops",
        arguments: TestDatabase.allCases)
    func heartbeats(_ kind: TestDatabase) async throws {
        let queue = try await (try QueueFixture(kind)).openOnSystemClock()
        let seen = Shared([Int]())
        var registry = TaskRegistry()
        registry.register(Echo(seen: seen, failuresBeforeSuccess: 0))
        for n in 0..<5 { try await queue.enqueue(Echo.self, .init(n: n)) }
        let worker = TaskWorker(
            queue: queue, registry: registry,
            configuration: .init(concurrency: 2, queues: ["q"], pollInterval: .milliseconds(20)),
            logger: quietLogger, metrics: NOOPMetricsHandler.instance, directory: queue,
            heartbeatInterval: .milliseconds(100))
        try await withThrowingTaskGroup(of: Void.self) { group in
            let serviceGroup = ServiceGroup(services: [worker], logger: quietLogger)
            group.addTask { try await serviceGroup.run() }
            // The list as it was when it showed the five tasks done (read again later, a loaded machine could
            // let the 0.3 s heartbeat lapse in between).
            let listed = Shared([WorkerHeartbeat]())
            let announced = await eventually {
                let live = (try? await queue.liveWorkers()) ?? []
                listed.value.withLock { $0 = live }
                return live.count == 1 && live[0].tasksDone == 5
            }
            #expect(announced)
            let live = listed.value.withLock { $0 }
            #expect(live.first?.id == worker.id && live.first?.lanes == 2 && live.first?.claiming == true)
            #expect(live.first?.pid == Int(ProcessInfo.processInfo.processIdentifier) && live.first?.queues == ["q"])
            #expect(worker.status.isClaiming)
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        #expect(try await queue.liveWorkers().isEmpty, "a stopped worker leaves the list at once")
        // A heartbeat past its expiry is dropped, not listed.
        var stale = worker.status.heartbeat(id: "gone", ttl: .seconds(1), now: Date().addingTimeInterval(-10))
        stale.host = "elsewhere"
        try await queue.recordHeartbeat(stale)
        #expect(try await queue.liveWorkers().isEmpty)
    }

    @Test("a task of a type no handler here knows is handed back with a delay, and runs once a worker knows it")
    func unknownTypeHandedBack() async throws {
        let queue = try await (try QueueFixture()).openOnSystemClock()
        let seen = Shared([Int]())
        try await queue.enqueue(Echo.self, .init(n: 7))
        let unaware = TaskWorker(
            queue: queue, registry: TaskRegistry(),
            configuration: .init(concurrency: 1, pollInterval: .milliseconds(20), unknownTypeDelay: .seconds(1)),
            logger: quietLogger, metrics: NOOPMetricsHandler.instance)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let serviceGroup = ServiceGroup(services: [unaware], logger: quietLogger)
            group.addTask { try await serviceGroup.run() }
            #expect(await eventually { (try? await queue.stats().first?.delayed) == 1 })
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        #expect(try await queue.deadTasks(limit: 10).isEmpty)
        var registry = TaskRegistry()
        registry.register(Echo(seen: seen, failuresBeforeSuccess: 0))
        let upgraded = TaskWorker(
            queue: queue, registry: registry, configuration: .init(concurrency: 1, pollInterval: .milliseconds(20)),
            logger: quietLogger, metrics: NOOPMetricsHandler.instance)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let serviceGroup = ServiceGroup(services: [upgraded], logger: quietLogger)
            group.addTask { try await serviceGroup.run() }
            #expect(await eventually(timeout: .seconds(5)) { seen.value.withLock { $0 } == [7] })
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }

    @Test("on graceful shutdown a running task finishes, and nothing more is claimed")
    func gracefulShutdown() async throws {
        let queue = try await (try QueueFixture()).openOnSystemClock()
        let started = Shared(0)
        let finished = Shared(0)
        struct Slow: TaskHandler {
            struct Payload: Codable, Sendable {}
            static let taskType = "slow"
            let started: Shared<Int>
            let finished: Shared<Int>
            func handle(_ payload: Payload, context: TaskContext) async throws {
                started.value.withLock { $0 += 1 }
                try await Task.sleep(for: .milliseconds(300))
                finished.value.withLock { $0 += 1 }
            }
        }
        var registry = TaskRegistry()
        registry.register(Slow(started: started, finished: finished))
        for _ in 0..<5 { try await queue.enqueue(Slow.self, .init()) }
        let worker = TaskWorker(
            queue: queue, registry: registry, configuration: .init(concurrency: 1, pollInterval: .milliseconds(20)),
            logger: quietLogger, metrics: NOOPMetricsHandler.instance)
        try await withThrowingTaskGroup(of: Void.self) { group in
            let serviceGroup = ServiceGroup(services: [worker], logger: quietLogger)
            group.addTask { try await serviceGroup.run() }
            #expect(await eventually { started.value.withLock { $0 } == 1 })
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
        #expect(started.value.withLock { $0 } == 1)
        #expect(finished.value.withLock { $0 } == 1)
        let stats = try await queue.stats()
        #expect(stats.first?.ready == 4)
        #expect(stats.first?.inFlight == 0)
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()
