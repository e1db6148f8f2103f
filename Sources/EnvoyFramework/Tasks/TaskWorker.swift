import Tracing
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// Runs tasks from a `TaskQueue`: `concurrency` at a time, each under a renewed lease and a timeout.
/// On graceful shutdown it stops claiming, lets running tasks finish, and hands back any it must abandon.
public struct TaskWorker: Service {
    /// Settings for a worker.
    public struct Configuration: Sendable {
        /// Tasks run at once.
        public var concurrency: Int
        /// Queues to take from (empty: every queue).
        public var queues: [String]
        /// How long a claim holds before another worker may take the task; renewed while running.
        public var lease: Duration
        /// The longest wait between looks at the queue when nothing wakes the worker.
        public var pollInterval: Duration
        /// The first wait before a task of a type this worker has no handler for runs again (doubling, at most
        /// 10 minutes): during a rolling deploy a newer worker brings the handler.
        public var unknownTypeDelay: Duration

        /// A configuration with the given settings.
        public init(
            concurrency: Int = 4, queues: [String] = [], lease: Duration = .seconds(30),
            pollInterval: Duration = .milliseconds(500), unknownTypeDelay: Duration = .seconds(30)
        ) {
            self.concurrency = concurrency
            self.queues = queues
            self.lease = lease
            self.pollInterval = pollInterval
            self.unknownTypeDelay = unknownTypeDelay
        }
    }

    let queue: any TaskQueue
    let registry: TaskRegistry
    let configuration: Configuration
    let logger: Logger
    let outcomes: [String: Counter]
    /// While the queue is down every lane fails to claim twice a second: one line a second is enough.
    let claimFailures: SampledLogger
    /// What it is doing now (for `/health`, gauges and heartbeats).
    public let status: WorkerStatus
    /// Where it announces itself every `heartbeatInterval` (nil: nowhere).
    let directory: (any TaskQueueAdministration)?
    /// This process run's id in heartbeats.
    public let id = UUID().uuidString.lowercased()
    let heartbeatInterval: Duration
    let lanesBusy: Gauge

    /// A worker running `registry`'s task types from `queue`, announcing itself in `directory`.
    public init(
        queue: any TaskQueue, registry: TaskRegistry, configuration: Configuration, logger: Logger,
        metrics: any MetricsFactory, directory: (any TaskQueueAdministration)? = nil,
        heartbeatInterval: Duration = .seconds(2)
    ) {
        self.queue = queue
        self.status = WorkerStatus(lanes: max(1, configuration.concurrency), queues: configuration.queues)
        self.directory = directory
        self.heartbeatInterval = heartbeatInterval
        self.lanesBusy = Gauge(label: "envoy_worker_lanes_busy", factory: metrics)
        self.registry = registry
        self.configuration = configuration
        self.logger = logger
        self.claimFailures = SampledLogger(logger: logger, perSecond: 1)
        var outcomes: [String: Counter] = [:]
        for outcome in ["completed", "retried", "dead", "released", "lease_lost", "unknown_type"] {
            outcomes[outcome] = Counter(
                label: "envoy_tasks_processed_total", dimensions: [("outcome", outcome)], factory: metrics)
        }
        self.outcomes = outcomes
    }

    /// Runs until graceful shutdown (or cancellation).
    public func run() async throws {
        logger.info(
            "worker started",
            metadata: [
                "concurrency": .stringConvertible(configuration.concurrency),
                "queues": "\(configuration.queues.isEmpty ? "all" : configuration.queues.joined(separator: ","))",
                "task.types": "\(registry.taskTypes.joined(separator: ","))",
            ])
        await withDiscardingTaskGroup { group in
            for _ in 0..<max(1, configuration.concurrency) {
                group.addTask { await self.slot() }
            }
            if directory != nil { group.addTask { await self.announce() } }
        }
        if let directory {  // gone from the list at once, not when the last heartbeat expires
            try? await directory.recordHeartbeat(status.heartbeat(id: id, ttl: .zero))
        }
        logger.info("worker stopped")
    }

    /// One lane of work: claim, run, settle, until shutdown.
    private func slot() async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let claimed: ClaimedTask?
            do {
                claimed = try await queue.claim(queues: configuration.queues, lease: configuration.lease)
                status.claimAttempted(failed: false)
            } catch {
                status.claimAttempted(failed: true)
                claimFailures.warning("claiming a task failed", metadata: ["error": "\(error)"])
                await sleepUnlessShutdown(configuration.pollInterval)
                continue
            }
            guard let claimed else {
                await waitForWork()
                continue
            }
            status.started(claimed.id)
            lanesBusy.record(status.lanesBusy)
            await process(claimed)
            status.finished(claimed.id)
            lanesBusy.record(status.lanesBusy)
        }
        status.stop()
    }

    /// Records a heartbeat every `heartbeatInterval` (valid three intervals) until shutdown; the first once the
    /// worker has asked the queue for work (or after one interval), so it says whether it is claiming.
    private func announce() async {
        let first = ContinuousClock.now + heartbeatInterval
        while !status.hasAsked && ContinuousClock.now < first && !Task.isShuttingDownGracefully {
            await sleepUnlessShutdown(.milliseconds(20))
        }
        var failures = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await directory?.recordHeartbeat(status.heartbeat(id: id, ttl: heartbeatInterval * 3))
                failures = 0
            } catch {
                failures += 1
                if failures == 1 { logger.warning("worker heartbeat failed", metadata: ["error": "\(error)"]) }
            }
            await sleepUnlessShutdown(heartbeatInterval)
        }
    }

    private func waitForWork() async {
        await cancelWhenGracefulShutdown {
            await self.queue.waitForTasks(queues: self.configuration.queues, timeout: self.configuration.pollInterval)
        }
    }

    private func sleepUnlessShutdown(_ duration: Duration) async {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }

    /// Runs one claimed task and records the outcome, in a span continuing the trace that enqueued it; never throws.
    func process(_ task: ClaimedTask) async {
        await Traces.span("task \(task.type)", continuing: task.traceContext, kind: .consumer) { span in
            span?.attributes["messaging.message.id"] = task.id
            span?.attributes["messaging.destination.name"] = task.queue
            span?.attributes["envoy.task.attempt"] = task.attempt
            await run(task)
        }
    }

    private func run(_ task: ClaimedTask) async {
        var logger = self.logger
        if let ids = Traces.ids() {
            logger[metadataKey: "trace.id"] = "\(ids.trace)"
            logger[metadataKey: "span.id"] = "\(ids.span)"
        }
        logger[metadataKey: "task.id"] = "\(task.id)"
        logger[metadataKey: "task.type"] = "\(task.type)"
        logger[metadataKey: "task.attempt"] = .stringConvertible(task.attempt)
        guard let entry = registry.entry(for: task.type) else {
            await handBack(unknown: task, logger: logger)
            return
        }
        let context = TaskContext(taskID: task.id, attempt: task.attempt, logger: logger)
        do {
            try await runWithLease(task, timeout: entry.retryPolicy.timeout) {
                try await entry.run(task.payload, context)
            }
            await settle(task, logger: logger, outcome: "completed") { try await queue.complete(task) }
        } catch  where error is CancellationError || Task.isCancelled {
            // Shutdown interrupted the run: hand the task back without counting the attempt.
            await settle(task, logger: logger, outcome: "released") { try await queue.release(task) }
        } catch let error as LeaseLost {
            outcomes["lease_lost"]?.increment()
            logger.warning(
                "lease lost while running; another worker owns the task now", metadata: ["error": "\(error)"])
        } catch {
            await fail(task, error: error, policy: entry.retryPolicy, logger: logger)
        }
    }

    /// A task no handler here knows: handed back for later (another worker, or this one after a deploy, may know
    /// it), and dead only once its attempts are used up.
    private func handBack(unknown task: ClaimedTask, logger: Logger) async {
        let reason = "no handler is registered for task type \(task.type) in this worker"
        guard task.attempt < task.maxAttempts else {
            logger.error("no worker ran this task type; dead-lettered", metadata: ["error": "\(reason)"])
            await settle(task, logger: logger, outcome: "dead") {
                try await queue.bury(task, error: "\(reason) (attempts exhausted)")
            }
            return
        }
        outcomes["unknown_type"]?.increment()
        let policy = RetryPolicy(
            maxAttempts: task.maxAttempts, baseDelay: configuration.unknownTypeDelay,
            maxDelay: max(configuration.unknownTypeDelay, .seconds(600)))
        let wait = min(policy.baseDelay * (1 << min(task.attempt - 1, 20)), policy.maxDelay)
        logger.warning(
            "no handler for this task type; handed back",
            metadata: ["retry.in_seconds": .stringConvertible(wait.inSeconds)])
        await settle(task, logger: logger, outcome: "retried") {
            try await queue.retry(task, after: wait, error: reason)
        }
    }

    private func fail(_ task: ClaimedTask, error: any Error, policy: RetryPolicy, logger: Logger) async {
        let reason = "\(error)"
        if error is any PermanentError || (error as? TaskFailure)?.isPermanent == true {
            logger.error("task failed permanently; dead-lettered", metadata: ["error": "\(reason)"])
            await settle(task, logger: logger, outcome: "dead") { try await queue.bury(task, error: reason) }
            return
        }
        guard task.attempt < task.maxAttempts else {
            logger.error("task failed on its last attempt; dead-lettered", metadata: ["error": "\(reason)"])
            await settle(task, logger: logger, outcome: "dead") {
                try await queue.bury(task, error: "\(reason) (attempts exhausted)")
            }
            return
        }
        var delay = policy.delay(afterAttempt: task.attempt)
        if let wait = (error as? TaskFailure)?.retryAfter {
            delay = max(wait, Duration.zero) + policy.baseDelay * Double.random(in: 0...0.1)
        }
        let wait = delay
        logger.warning(
            "task failed; will retry",
            metadata: ["error": "\(reason)", "retry.in_seconds": .stringConvertible(wait.inSeconds)])
        await settle(task, logger: logger, outcome: "retried") {
            try await queue.retry(task, after: wait, error: reason)
        }
    }

    /// Runs `work`, renewing the lease every third of its length and failing it after `timeout`.
    private func runWithLease(
        _ task: ClaimedTask, timeout: Duration, _ work: @escaping @Sendable () async throws -> Void
    )
        async throws
    {
        let lease = configuration.lease
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await work()
                return true
            }
            group.addTask {
                let deadline = ContinuousClock.now.advanced(by: timeout)
                while ContinuousClock.now < deadline {
                    try await Task.sleep(for: min(lease / 3, deadline - ContinuousClock.now))
                    guard try await queue.renew(task, lease: lease) else { throw LeaseLost(taskID: task.id) }
                }
                throw TaskTimedOut(timeout: timeout)
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    private func settle(
        _ task: ClaimedTask, logger: Logger, outcome: String, _ action: @escaping @Sendable () async throws -> Void
    ) async {
        do {
            // Recording the outcome must survive the cancellation that may have ended the run itself.
            try await Task { try await action() }.value
            outcomes[outcome]?.increment()
        } catch {
            // Not settled: the lease will expire and the task run again — a duplicate, never a loss.
            outcomes["lease_lost"]?.increment()
            logger.error(
                "could not record the task's outcome", metadata: ["outcome": "\(outcome)", "error": "\(error)"])
        }
    }
}

/// A task ran longer than its policy's timeout.
public struct TaskTimedOut: Error, CustomStringConvertible, Sendable {
    /// The limit it exceeded.
    public var timeout: Duration
    /// One line stating the limit.
    public var description: String { "timed out after \(timeout)" }
}
