import Logging

/// A kind of background task: its name on the queue, its payload, and the work it does.
/// Conform one type, register it with `TaskRegistry`, and enqueue its payload from anywhere.
public protocol TaskHandler: Sendable {
    /// The payload a task of this kind carries (stored as JSON on the queue).
    associatedtype Payload: Codable & Sendable
    /// The task type's stable name on the queue, e.g. `send_email`.
    static var taskType: String { get }
    /// The queue tasks of this type go to (workers choose queues with `--queues`).
    static var queue: String { get }
    /// How failures of this type are retried.
    static var retryPolicy: RetryPolicy { get }
    /// Does the work; throw `TaskFailure` to steer retries, any other error retries with backoff.
    func handle(_ payload: Payload, context: TaskContext) async throws
}

extension TaskHandler {
    /// The `default` queue.
    public static var queue: String { "default" }
    /// `RetryPolicy.standard`.
    public static var retryPolicy: RetryPolicy { .standard }
}

/// What a handler knows about the task it runs.
public struct TaskContext: Sendable {
    /// The task's id.
    public var taskID: String
    /// 1 for the first run, 2 for the first retry, …
    public var attempt: Int
    /// A logger carrying `task.id` and `task.type`.
    public var logger: Logger

    /// A context with the given fields.
    public init(taskID: String, attempt: Int, logger: Logger) {
        self.taskID = taskID
        self.attempt = attempt
        self.logger = logger
    }
}

/// An error that retrying cannot fix, like `TaskFailure.permanent`: the worker dead-letters the task at once.
public protocol PermanentError: Error {}

/// Failures that steer the retry decision. A struct with a private kind, so that a new kind breaks no caller.
public struct TaskFailure: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Kind: Equatable {
        case permanent
        case retryAfter(Duration)
    }

    private let kind: Kind
    /// What went wrong, in one line.
    public let reason: String

    /// Retrying cannot help (bad address, rejected request): straight to the dead-letter queue.
    public static func permanent(_ reason: String) -> TaskFailure { TaskFailure(kind: .permanent, reason: reason) }

    /// The provider asked to wait `delay` (`Retry-After`, a rate-limit reset) before the next attempt.
    public static func retryAfter(_ delay: Duration, _ reason: String) -> TaskFailure {
        TaskFailure(kind: .retryAfter(delay), reason: reason)
    }

    /// Whether the task is dead-lettered at once.
    public var isPermanent: Bool { kind == .permanent }

    /// How long the provider asked to wait, when it did.
    public var retryAfter: Duration? {
        if case .retryAfter(let delay) = kind { return delay }
        return nil
    }

    /// The failure's reason.
    public var description: String {
        switch kind {
        case .permanent: "permanent: \(reason)"
        case .retryAfter(let delay): "\(reason) (retry after \(delay))"
        }
    }
}

/// How many times a task runs and how long it waits between runs (exponential backoff, full jitter).
public struct RetryPolicy: Sendable, Hashable {
    /// Runs in all, the first included.
    public var maxAttempts: Int
    /// The backoff ceiling after the first failure.
    public var baseDelay: Duration
    /// The largest wait between runs.
    public var maxDelay: Duration
    /// How long one run may take before it counts as failed.
    public var timeout: Duration

    /// A policy with the given limits.
    public init(maxAttempts: Int, baseDelay: Duration, maxDelay: Duration, timeout: Duration = .seconds(60)) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.timeout = timeout
    }

    /// 8 runs, waits up to 2 s, 4 s, 8 s … capped at 10 minutes.
    public static let standard = RetryPolicy(maxAttempts: 8, baseDelay: .seconds(2), maxDelay: .seconds(600))

    /// The wait before run `attempt + 1` after run `attempt` failed: uniform in [0, min(max, base·2^(attempt-1))],
    /// so that many tasks failing together do not retry together.
    public func delay(afterAttempt attempt: Int) -> Duration {
        let exponent = Double(min(max(attempt - 1, 0), 40))
        let ceiling = min(maxDelay, baseDelay * pow2(exponent))
        return ceiling * Double.random(in: 0...1)
    }

    private func pow2(_ exponent: Double) -> Double {
        var result = 1.0
        for _ in 0..<Int(exponent) { result *= 2 }
        return result
    }
}
