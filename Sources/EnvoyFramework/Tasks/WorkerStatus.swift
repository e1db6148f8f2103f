import Foundation
import Synchronization

/// What one worker process is doing now: lanes busy, tasks done, whether its last look at the queue worked.
public final class WorkerStatus: Sendable {
    /// Tasks it runs at once.
    public let lanes: Int
    /// Its queues (empty: every queue).
    public let queues: [String]
    /// When it started.
    public let startedAt: Date
    private let busy = Atomic<Int>(0)
    private let done = Atomic<Int>(0)
    private let claimFailed = Atomic<Bool>(false)
    private let claimedOnce = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let held = Mutex<Set<String>>([])

    /// A status for a worker of `lanes` lanes on `queues`.
    public init(lanes: Int, queues: [String], startedAt: Date = Date()) {
        self.lanes = lanes
        self.queues = queues
        self.startedAt = startedAt
    }

    /// Lanes running a task now.
    public var lanesBusy: Int { busy.load(ordering: .relaxed) }
    /// Tasks settled since start (any outcome).
    public var tasksDone: Int { done.load(ordering: .relaxed) }
    /// Whether it is taking work: it has asked the queue, the last ask worked, and it is not shutting down.
    public var isClaiming: Bool {
        claimedOnce.load(ordering: .relaxed) && !claimFailed.load(ordering: .relaxed)
            && !stopping.load(ordering: .relaxed)
    }

    /// Whether it has asked the queue for work at least once.
    public var hasAsked: Bool { claimedOnce.load(ordering: .relaxed) }

    func claimAttempted(failed: Bool) {
        claimFailed.store(failed, ordering: .relaxed)
        claimedOnce.store(true, ordering: .relaxed)
    }
    /// The ids of the tasks it runs now.
    public var holding: [String] { held.withLock { $0.sorted() } }

    func started(_ id: String) {
        busy.add(1, ordering: .relaxed)
        _ = held.withLock { $0.insert(id) }
    }
    func finished(_ id: String) {
        _ = held.withLock { $0.remove(id) }
        busy.subtract(1, ordering: .relaxed)
        done.add(1, ordering: .relaxed)
    }
    func stop() { stopping.store(true, ordering: .relaxed) }

    /// What the worker's heartbeat says of it now, valid for `ttl`.
    public func heartbeat(id: String, ttl: Duration, now: Date = Date()) -> WorkerHeartbeat {
        WorkerHeartbeat(
            id: id, host: ProcessInfo.processInfo.hostName, pid: Int(ProcessInfo.processInfo.processIdentifier),
            lanes: lanes, lanesBusy: lanesBusy, tasksDone: tasksDone, holding: holding, queues: queues,
            claiming: isClaiming,
            startedAt: startedAt, seenAt: now, expiresAt: now.addingTimeInterval(ttl.inSeconds))
    }
}

/// A worker's announcement that it is alive, kept by the queue's store until it expires.
public struct WorkerHeartbeat: Sendable, Codable, Equatable {
    /// The worker's id (unique per process run).
    public var id: String
    /// The machine's host name.
    public var host: String
    /// The process id.
    public var pid: Int
    /// Lanes (tasks at once).
    public var lanes: Int
    /// Lanes running a task when it was sent.
    public var lanesBusy: Int
    /// Tasks settled since the worker started.
    public var tasksDone: Int
    /// The tasks it was running (their ids): the console names a task's holder from these.
    public var holding: [String]
    /// Its queues (empty: every queue).
    public var queues: [String]
    /// Whether it was taking work.
    public var claiming: Bool
    /// When the worker started.
    public var startedAt: Date
    /// When this heartbeat was sent.
    public var seenAt: Date
    /// When it no longer counts as alive without a newer one.
    public var expiresAt: Date
}

extension WorkerHeartbeat {
    /// How stores write a heartbeat (dates as seconds since 1970).
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        return encoder
    }()
    /// How stores read one back.
    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }()
}
