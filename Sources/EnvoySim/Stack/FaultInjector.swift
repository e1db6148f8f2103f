import EnvoyFramework
import Foundation
import Synchronization

/// Applies a scenario's faults at their times and remembers when each really began and ended.
final class FaultInjector: Sendable {
    /// A fault as it happened, seconds from the run's start.
    struct Applied: Sendable {
        var kind: String
        var at: Double
        var duration: Double
        /// Why it could not be applied (nil: it was).
        var error: String?
    }

    let faults: [Scenario.Fault]
    let stack: SimStack
    private let applied = Mutex<[Applied]>([])

    init(_ faults: [Scenario.Fault], stack: SimStack) {
        self.faults = faults
        self.stack = stack
    }

    /// The faults applied so far, in time order.
    var timeline: [Applied] { applied.withLock { $0.sorted { $0.at < $1.at } } }

    /// Runs every fault at `origin + at`, concurrently; returns when the last has ended.
    func run(origin: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            for fault in faults {
                group.addTask {
                    try? await Task.sleep(until: origin + .seconds(fault.at), clock: .continuous)
                    let began = (ContinuousClock.now - origin).inSeconds
                    var failure: String?
                    do { try await self.apply(fault) } catch { failure = "\(error)" }
                    let ended = (ContinuousClock.now - origin).inSeconds
                    self.applied.withLock {
                        $0.append(Applied(kind: fault.kind, at: began, duration: ended - began, error: failure))
                    }
                }
            }
        }
    }

    private func apply(_ fault: Scenario.Fault) async throws {
        let hold = Duration.milliseconds(Int(fault.duration * 1000))
        guard let kind = fault.known else { return }  // a loaded scenario has only known kinds
        switch kind {
        case .redisDown:
            stack.redis?.kill()
            try? await Task.sleep(for: hold)
            try? stack.redis?.restart()
        case .redisBlackhole:
            stack.redisProxy?.set(.blackhole)
            try? await Task.sleep(for: hold)
            stack.redisProxy?.set(.pass)
        case .redisLatency:
            stack.redisProxy?.set(.latency(.milliseconds(fault.latencyMs)))
            try? await Task.sleep(for: hold)
            stack.redisProxy?.set(.pass)
        case .redisStop:
            stack.redis?.pause(true)
            try? await Task.sleep(for: hold)
            stack.redis?.pause(false)
        case .serverStall:
            stack.stallServer(true)
            try? await Task.sleep(for: hold)
            stack.stallServer(false)
        case .workerKill:
            stack.killWorkers()
            try? await Task.sleep(for: hold)
            try? stack.restartWorkers()
        case .mailgunErrors, .paddleErrors:
            let reset = Int(Date().timeIntervalSince1970) + 1
            let headers = fault.status == 429 ? ["X-RateLimit-Reset": "\(reset)", "Retry-After": "1"] : [:]
            let faults = kind == .mailgunErrors ? stack.mailgun.faults : stack.paddle.faults
            faults.fail(next: fault.count, status: fault.status, headers: headers, message: "simulated \(fault.status)")
        case .redisMasterKill:
            guard let cluster = stack.redisCluster else { throw SimError.stack("no Redis Cluster to kill a master of") }
            let port = try await cluster.masterPort(forKey: fault.key)
            let killed = ContinuousClock.now
            try await cluster.killMaster(port: port)  // returns once the replica serves the slots
            try await Task.sleep(until: killed + hold, clock: .continuous)
            try await cluster.restartNode(port: port)
        case .redisReshard:
            guard let cluster = stack.redisCluster else { throw SimError.stack("no Redis Cluster to reshard") }
            let from = try await cluster.masterPort(forKey: fault.key)
            try await cluster.reshard(slots: fault.slots, from: from, to: try await cluster.nextMasterPort(after: from))
        case .mailgunSlow:
            stack.mailgun.faults.setLatency(.milliseconds(fault.latencyMs))
            try? await Task.sleep(for: hold)
            stack.mailgun.faults.setLatency(.zero)
        }
    }
}
