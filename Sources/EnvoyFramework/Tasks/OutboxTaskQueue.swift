import Logging
import Metrics
import ServiceLifecycle

/// A `TaskQueue` whose enqueue never fails for want of its primary (Redis): when the primary cannot take a
/// task, the task is committed to a durable outbox in the application's database instead, and `OutboxRelay` moves it to the
/// primary once that answers again. Everything else — claiming, settling, stats — is the primary's.
public struct OutboxTaskQueue: AdministeredTaskQueue, CustomStringConvertible {
    /// The primary, and where its outbox is.
    public var description: String { "\(providerDescription(primary)) (outbox: \(outbox))" }

    /// Where tasks normally go and workers take them from.
    public let primary: any AdministeredTaskQueue
    /// Where tasks wait while the primary is unreachable.
    public let outbox: SQLTaskQueue
    let logger: Logger
    let divertedLog: SampledLogger
    let diverted: Counter

    /// A queue on `primary` falling back to `outbox`.
    public init(
        primary: any AdministeredTaskQueue, outbox: SQLTaskQueue, logger: Logger, metrics: any MetricsFactory
    ) {
        self.primary = primary
        self.outbox = outbox
        self.logger = logger
        self.divertedLog = SampledLogger(logger: logger, perSecond: 5)
        self.diverted = Counter(label: "envoy_outbox_tasks_total", factory: metrics)
    }

    /// Enqueues on the primary, or durably in the outbox if the primary fails.
    public func enqueue(_ task: NewTask) async throws -> EnqueueResult {
        do {
            return try await primary.enqueue(task)
        } catch {
            diverted.increment()
            divertedLog.warning(
                "task queue unavailable; task kept in the local outbox",
                metadata: ["task.type": "\(task.type)", "error": "\(error)"])
            return try await outbox.enqueue(task)
        }
    }

    /// The primary's claim.
    public func claim(queues: [String], lease: Duration) async throws -> ClaimedTask? {
        try await primary.claim(queues: queues, lease: lease)
    }
    /// The primary's wait.
    public func waitForTasks(queues: [String], timeout: Duration) async {
        await primary.waitForTasks(queues: queues, timeout: timeout)
    }
    /// The primary's renew.
    public func renew(_ task: ClaimedTask, lease: Duration) async throws -> Bool {
        try await primary.renew(task, lease: lease)
    }
    /// The primary's complete.
    public func complete(_ task: ClaimedTask) async throws { try await primary.complete(task) }
    /// The primary's retry.
    public func retry(_ task: ClaimedTask, after delay: Duration, error: String) async throws {
        try await primary.retry(task, after: delay, error: error)
    }
    /// The primary's release.
    public func release(_ task: ClaimedTask) async throws { try await primary.release(task) }
    /// The primary's bury.
    public func bury(_ task: ClaimedTask, error: String) async throws { try await primary.bury(task, error: error) }
    /// The primary's counts, plus a `(outbox)` row while tasks wait locally.
    public func stats() async throws -> [QueueStats] {
        var stats = try await primary.stats()
        let waiting = (try? await outbox.stats()) ?? []
        let total = waiting.reduce(0) { $0 + $1.ready + $1.delayed + $1.inFlight }
        if total > 0 {
            stats.append(
                QueueStats(
                    queue: "(outbox)", ready: total, delayed: 0, inFlight: 0, dead: 0,
                    oldestReadyAge: waiting.map(\.oldestReadyAge).max() ?? 0))
        }
        return stats
    }
    /// The primary's dead letters.
    public func deadTasks(limit: Int) async throws -> [DeadTask] { try await primary.deadTasks(limit: limit) }
    /// The primary's retry-dead.
    public func retryDead(ids: [String]?) async throws -> Int { try await primary.retryDead(ids: ids) }
    /// The primary's delete-dead.
    public func deleteDead(ids: [String]?) async throws -> Int { try await primary.deleteDead(ids: ids) }
    /// The task in the primary, else in the outbox (waiting to be relayed).
    public func task(id: String) async throws -> TaskRecord? {
        if let found = try await primary.task(id: id) { return found }
        return try await outbox.task(id: id)
    }
    /// The primary's tasks of `queue` (the outbox's wait in the `(outbox)` row).
    public func tasks(queue: String, state: TaskState, limit: Int) async throws -> [TaskRecord] {
        try await primary.tasks(queue: queue, state: state, limit: limit)
    }
    /// The primary's heartbeats (workers take from the primary).
    public func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws {
        try await primary.recordHeartbeat(heartbeat)
    }
    /// The primary's workers.
    public func liveWorkers() async throws -> [WorkerHeartbeat] { try await primary.liveWorkers() }
    /// The relay that moves the outbox's tasks to the primary, and whatever the primary needs.
    public var services: [any Service] { [OutboxRelay(queue: self)] + primary.services }
    /// As the primary.
    public var runsWorkerInProcess: Bool { primary.runsWorkerInProcess }
}

/// Moves tasks from the local outbox to the primary queue as soon as the primary takes them.
/// A task is removed from the outbox only after the primary accepted it; a crash in between re-sends it
/// (at-least-once; a deduplication key, if it has one, drops the copy).
public struct OutboxRelay: Service {
    let queue: OutboxTaskQueue
    let interval: Duration

    /// A relay for `queue`, retrying every `interval` while the primary is down.
    public init(queue: OutboxTaskQueue, interval: Duration = .milliseconds(500)) {
        self.queue = queue
        self.interval = interval
    }

    /// Relays until graceful shutdown.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await relayAll()
            await cancelWhenGracefulShutdown { await queue.outbox.waitForTasks(queues: [], timeout: interval) }
        }
    }

    /// Relays every task now in the outbox; stops at the first the primary refuses. Returns how many moved.
    @discardableResult
    public func relayAll() async -> Int {
        var moved = 0
        while let task = try? await queue.outbox.claim(queues: [], lease: .seconds(30)) {
            do {
                _ = try await queue.primary.enqueue(
                    NewTask(
                        type: task.type, queue: task.queue, payload: task.payload, maxAttempts: task.maxAttempts,
                        deduplicationKey: task.deduplicationKey, traceContext: task.traceContext))
            } catch {
                try? await queue.outbox.release(task)
                return moved
            }
            try? await queue.outbox.complete(task)
            moved += 1
        }
        if moved > 0 { queue.logger.info("relayed tasks from the local outbox", metadata: ["tasks": "\(moved)"]) }
        return moved
    }
}
