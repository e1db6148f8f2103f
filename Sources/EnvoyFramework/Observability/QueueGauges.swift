import Metrics
import Synchronization

/// Publishes `QueueStats` as gauges `envoy_queue_tasks{queue,state}` and `envoy_queue_oldest_ready_seconds{queue}`.
public final class QueueGauges: Sendable {
    private let metrics: any MetricsFactory
    private let gauges = Mutex([String: Gauge]())

    /// Gauges created in `metrics`.
    public init(metrics: any MetricsFactory) {
        self.metrics = metrics
    }

    /// Sets every gauge from a fresh stats reading.
    public func record(_ stats: [QueueStats]) {
        for queue in stats {
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
