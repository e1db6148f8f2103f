import Metrics
import Synchronization

/// Publishes `QueueStats` as gauges `envoy_queue_tasks{queue,state}` and `envoy_queue_oldest_ready_seconds{queue}`.
public final class QueueGauges: Sendable {
    private let metrics: any MetricsFactory
    private let gauges = Mutex([String: Gauge]())
    private let knownQueues = Mutex(Set<String>())

    /// Gauges created in `metrics`, reporting at least `queues` (as zeros while they are empty).
    public init(metrics: any MetricsFactory, queues: [String] = []) {
        self.metrics = metrics
        knownQueues.withLock { $0.formUnion(queues) }
    }

    /// Reports `queues` too (as zeros while they are empty).
    public func report(_ queues: [String]) {
        knownQueues.withLock { $0.formUnion(queues) }
    }

    /// Sets every gauge from a fresh stats reading; a queue missing from it has emptied and reads zero.
    public func record(_ stats: [QueueStats]) {
        let present = Set(stats.map(\.queue))
        let emptied = knownQueues.withLock { known in
            known.formUnion(present)
            return known.subtracting(present)
        }
        let zeros = emptied.map { QueueStats(queue: $0, ready: 0, delayed: 0, inFlight: 0, dead: 0, oldestReadyAge: 0) }
        for queue in stats + zeros {
            gauge("envoy_queue_tasks", queue.queue, "ready").record(queue.ready)
            gauge("envoy_queue_tasks", queue.queue, "delayed").record(queue.delayed)
            gauge("envoy_queue_tasks", queue.queue, "in_flight").record(queue.inFlight)
            gauge("envoy_queue_tasks", queue.queue, "dead").record(queue.dead)
            gauge("envoy_queue_oldest_ready_seconds", queue.queue, nil).record(queue.oldestReadyAge)
        }
    }

    private func gauge(_ label: String, _ queue: String, _ state: String?) -> Gauge {
        gauges.withLock { gauges in
            let id = "\(label)|\(queue)|\(state ?? "")"
            if let gauge = gauges[id] { return gauge }
            var dimensions = [("queue", queue)]
            if let state { dimensions.append(("state", state)) }
            let gauge = Gauge(label: label, dimensions: dimensions, factory: metrics)
            gauges[id] = gauge
            return gauge
        }
    }
}
