import Foundation
import ServiceLifecycle

/// A task waiting to be stored.
public struct NewTask: Sendable {
    /// The handler's `taskType`.
    public var type: String
    /// The queue it goes to.
    public var queue: String
    /// The JSON payload.
    public var payload: [UInt8]
    /// Runs in all before it is dead-lettered.
    public var maxAttempts: Int
    /// Earliest run time, as Unix seconds (now when nil).
    public var runAt: Double?
    /// When set, a second task with the same key is not queued while the first is remembered.
    public var deduplicationKey: String?
    /// The W3C `traceparent` of the span that enqueued it (the request), so that its run joins the same trace.
    public var traceContext: String?

    /// A task with the given fields; its trace context is the current span's unless given.
    public init(
        type: String, queue: String, payload: [UInt8], maxAttempts: Int, runAt: Double? = nil,
        deduplicationKey: String? = nil, traceContext: String? = Traces.current()
    ) {
        self.traceContext = traceContext
        self.type = type
        self.queue = queue
        self.payload = payload
        self.maxAttempts = maxAttempts
        self.runAt = runAt
        self.deduplicationKey = deduplicationKey
    }
}

/// What enqueueing did.
public enum EnqueueResult: Sendable, Equatable {
    /// Stored under this id.
    case enqueued(String)
    /// A task with the same deduplication key was already taken; nothing new was stored.
    case duplicate
}

/// A task held by one worker under a lease; only the holder of `leaseToken` may settle it.
public struct ClaimedTask: Sendable {
    /// The task's id.
    public var id: String
    /// The handler's `taskType`.
    public var type: String
    /// The queue it came from.
    public var queue: String
    /// The JSON payload.
    public var payload: [UInt8]
    /// 1 for the first run.
    public var attempt: Int
    /// Runs allowed in all.
    public var maxAttempts: Int
    /// The fencing token of this claim; a stale holder's ack is refused.
    public var leaseToken: String
    /// The deduplication key it was enqueued with, if the queue keeps it.
    public var deduplicationKey: String?
    /// The `traceparent` it was enqueued with, if the queue keeps it.
    public var traceContext: String?

    /// A claimed task with the given fields.
    public init(
        id: String, type: String, queue: String, payload: [UInt8], attempt: Int, maxAttempts: Int, leaseToken: String,
        deduplicationKey: String? = nil, traceContext: String? = nil
    ) {
        self.deduplicationKey = deduplicationKey
        self.traceContext = traceContext
        self.id = id
        self.type = type
        self.queue = queue
        self.payload = payload
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.leaseToken = leaseToken
    }
}

/// Counts for one queue.
public struct QueueStats: Sendable, Equatable, Codable {
    /// The queue's name.
    public var queue: String
    /// Runnable now.
    public var ready: Int
    /// Waiting for their run time (retries, delayed tasks).
    public var delayed: Int
    /// Held by a worker.
    public var inFlight: Int
    /// In the dead-letter queue.
    public var dead: Int
    /// Age in seconds of the oldest runnable task (0 when none).
    public var oldestReadyAge: Double

    enum CodingKeys: String, CodingKey {
        case queue, ready, delayed, inFlight, dead
        case oldestReadyAge = "oldest_age_seconds"
    }

    /// Stats with the given counts.
    public init(queue: String, ready: Int, delayed: Int, inFlight: Int, dead: Int, oldestReadyAge: Double) {
        self.queue = queue
        self.ready = ready
        self.delayed = delayed
        self.inFlight = inFlight
        self.dead = dead
        self.oldestReadyAge = oldestReadyAge
    }
}

/// A task in the dead-letter queue, with every failure it had.
public struct DeadTask: Sendable, Codable, Equatable {
    /// The task's id.
    public var id: String
    /// The handler's `taskType`.
    public var type: String
    /// The queue it came from.
    public var queue: String
    /// Runs it had.
    public var attempts: Int
    /// The last failure's reason.
    public var reason: String
    /// Every failure, oldest first.
    public var history: [String]
    /// When it died, Unix seconds.
    public var diedAt: Double

    /// A dead task with the given fields.
    public init(
        id: String, type: String, queue: String, attempts: Int, reason: String, history: [String], diedAt: Double
    ) {
        self.id = id
        self.type = type
        self.queue = queue
        self.attempts = attempts
        self.reason = reason
        self.history = history
        self.diedAt = diedAt
    }
}

/// Where a task is: what `TaskRecord.state` says, and what `tasks(queue:state:limit:)` lists.
public enum TaskState: String, Sendable, Codable, CaseIterable {
    /// Runnable now.
    case ready
    /// Waiting for its run time (a retry, a delayed task).
    case delayed
    /// Held by a worker.
    case inFlight = "in_flight"
    /// In the dead-letter queue.
    case dead
}

/// One task as an operator sees it: where it is, its payload, every failure.
public struct TaskRecord: Sendable, Codable, Equatable {
    /// The task's id.
    public var id: String
    /// The handler's `taskType`.
    public var type: String
    /// Its queue.
    public var queue: String
    /// `ready`, `delayed`, `in_flight` or `dead`.
    public var state: String
    /// Runs it has had.
    public var attempts: Int
    /// Runs it may have.
    public var maxAttempts: Int
    /// The payload as enqueued.
    public var payload: [UInt8]
    /// Every failure, oldest first.
    public var history: [String]
    /// When it was enqueued, Unix seconds.
    public var createdAt: Double
    /// While in flight: when its worker's lease ends, Unix seconds.
    public var leaseUntil: Double?
    /// When it died, Unix seconds.
    public var diedAt: Double?

    /// A record with the given fields.
    public init(
        id: String, type: String, queue: String, state: String, attempts: Int, maxAttempts: Int, payload: [UInt8],
        history: [String], createdAt: Double, leaseUntil: Double? = nil, diedAt: Double? = nil
    ) {
        self.id = id
        self.type = type
        self.queue = queue
        self.state = state
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.payload = payload
        self.history = history
        self.createdAt = createdAt
        self.leaseUntil = leaseUntil
        self.diedAt = diedAt
    }
}

/// A durable queue of background tasks with leases: a task claimed by a worker that dies returns to the
/// queue when its lease expires, so no task is lost. Embedded: `SQLTaskQueue`; Redis: a plugin. This is the hot
/// path producers and workers use; what operators do is `TaskQueueAdministration`.
public protocol TaskQueue: Sendable {
    /// Stores a task durably; it is safe once this returns.
    func enqueue(_ task: NewTask) async throws -> EnqueueResult
    /// Takes the next runnable task of `queues` under a lease of `lease`, or nil if none is runnable.
    func claim(queues: [String], lease: Duration) async throws -> ClaimedTask?
    /// Waits until a task may be runnable (or `timeout` passes); returns early when one is enqueued.
    func waitForTasks(queues: [String], timeout: Duration) async
    /// Extends a held lease; false when the lease was lost (the task went back to another worker).
    func renew(_ task: ClaimedTask, lease: Duration) async throws -> Bool
    /// Removes a task that succeeded.
    func complete(_ task: ClaimedTask) async throws
    /// Schedules another run after `delay`, recording `error`.
    func retry(_ task: ClaimedTask, after delay: Duration, error: String) async throws
    /// Hands a task back untouched (shutdown): it runs again without this attempt counting.
    func release(_ task: ClaimedTask) async throws
    /// Moves a task to the dead-letter queue with its reason.
    func bury(_ task: ClaimedTask, error: String) async throws
    /// Whether `envoy serve` runs a worker in its own process by default: true for a queue that needs no worker
    /// process of its own (the embedded one).
    var runsWorkerInProcess: Bool { get }
    /// Long-running work the queue needs beside it (an outbox relay), run in the application's service group.
    var services: [any Service] { get }
}

extension TaskQueue {
    /// A queue workers of their own serve.
    public var runsWorkerInProcess: Bool { false }
    /// None.
    public var services: [any Service] { [] }
}

/// What operators do with a queue: look at it, and retry or delete dead tasks.
public protocol TaskQueueAdministration: Sendable {
    /// Per-queue counts.
    func stats() async throws -> [QueueStats]
    /// Dead tasks, newest first.
    func deadTasks(limit: Int) async throws -> [DeadTask]
    /// Puts dead tasks (all, or those named) back in their queues with fresh attempts; returns how many.
    func retryDead(ids: [String]?) async throws -> Int
    /// Deletes dead tasks (all, or those named) for good; returns how many.
    func deleteDead(ids: [String]?) async throws -> Int
    /// One task by id, wherever it is (nil: no such task, or it completed).
    func task(id: String) async throws -> TaskRecord?
    /// The tasks of `queue` in `state` (`ready`, oldest first; `delayed`, soonest first; `in_flight`, soonest
    /// lease end first), at most `limit`.
    func tasks(queue: String, state: TaskState, limit: Int) async throws -> [TaskRecord]
    /// Keeps `heartbeat` (replacing the worker's last) until it expires.
    func recordHeartbeat(_ heartbeat: WorkerHeartbeat) async throws
    /// The workers whose last heartbeat has not expired, by start time (expired ones are dropped).
    func liveWorkers() async throws -> [WorkerHeartbeat]
}

/// A queue that is also administered in one place (every provider Envoy ships).
public typealias AdministeredTaskQueue = TaskQueue & TaskQueueAdministration

extension TaskQueue {
    /// Enqueues `payload` for the handler type `H`, with its queue and retry policy.
    @discardableResult
    public func enqueue<H: TaskHandler>(
        _ handler: H.Type, _ payload: H.Payload, delay: Duration? = nil, deduplicationKey: String? = nil
    ) async throws -> EnqueueResult {
        try await enqueue(try NewTask(handler, payload, delay: delay, deduplicationKey: deduplicationKey))
    }
}

extension NewTask {
    /// `payload` for the handler type `H`, with its queue and retry policy.
    public init<H: TaskHandler>(
        _ handler: H.Type, _ payload: H.Payload, delay: Duration? = nil, deduplicationKey: String? = nil
    ) throws {
        self.init(
            type: H.taskType,
            queue: H.queue,
            payload: Array(try JSONEncoder().encode(payload)),
            maxAttempts: H.retryPolicy.maxAttempts,
            runAt: delay.map { Date().timeIntervalSince1970 + $0.inSeconds },
            deduplicationKey: deduplicationKey)
    }
}
