import CoreMetrics
import Foundation
import Prometheus
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The metrics factory behind `/metrics`: Prometheus' registry with a HELP line for every family (`MetricHelp`)
/// and duration buckets fine enough for Envoy's latency goals (from 0.25 ms).
struct DocumentedMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    /// Request and store durations: quarter-millisecond steps at the bottom, where cached reads are.
    static let durationBuckets: [Duration] = [
        0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000,
    ].map { Duration.microseconds(Int64($0 * 1000)) }
    static let valueBuckets: [Double] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000]

    func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: MetricHelp.text(for: label))
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        aggregate
            ? registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: Self.valueBuckets)
            : registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: Self.durationBuckets)
    }
    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }
    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }
    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }
    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}

/// What each of Envoy's metric families means (the `# HELP` line). A family without an entry (an application's
/// own) still gets a HELP line, naming it.
enum MetricHelp {
    static let texts: [String: String] = [
        "envoy_http_requests_total": "HTTP requests answered, by method, route template and status.",
        "envoy_http_request_duration_seconds": "Time to answer an HTTP request, by method and route template.",
        "envoy_cache_requests_total": "Cache look-ups by cache and result (hit, miss, bypass).",
        "envoy_cache_invalidations_total": "Cache invalidations by cache (a user's generation replaced).",
        "envoy_cache_invalidation_failures_total": "Cache invalidations that failed and wait to be retried, by cache.",
        "envoy_db_queries_total": "Database statements, by component.",
        "envoy_ratelimit_decisions_total":
            "Rate-limit decisions by policy and decision (admitted, rejected, shadow_rejected).",
        "envoy_ratelimit_fallback_decisions_total":
            "Decisions taken by the in-process limiter while the store failed, by policy.",
        "envoy_ratelimit_store_duration_seconds": "Time the rate-limit store took to decide.",
        "envoy_tasks_processed_total": "Tasks a worker settled, by outcome.",
        "envoy_worker_lanes_busy": "Worker lanes running a task now.",
        "envoy_queue_tasks": "Tasks in each queue by state (ready, delayed, in_flight, dead), read at scrape time.",
        "envoy_queue_oldest_ready_seconds": "Age of each queue's oldest runnable task, read at scrape time.",
        "envoy_outbox_tasks_total": "Tasks kept in the local outbox because the queue could not take them.",
        "envoy_paddle_webhooks_total": "Paddle webhook deliveries by result.",
        "envoy_paddle_events_total": "Paddle events processed, by type and result.",
        "envoy_redis_calls_total": "Redis calls sent, by node.",
        "envoy_redis_redirects_total": "Redis Cluster redirects followed (MOVED, ASK).",
        "envoy_redis_map_refreshes_total": "Redis Cluster slot-map reloads.",
        "envoy_redis_masters": "Redis masters (1 for a single server), read at scrape time.",
        "envoy_redis_masters_reachable": "Redis masters that answered a PING at scrape time.",
        "envoy_build_info": "Envoy's version (always 1).",
        "process_cpu_seconds_total": "User and system CPU time the process has used, seconds.",
        "process_resident_memory_bytes": "Resident memory of the process, bytes.",
        "process_virtual_memory_bytes": "Virtual memory of the process, bytes.",
        "process_open_fds": "Open file descriptors of the process.",
        "process_max_fds": "The process's limit of open file descriptors.",
        "process_start_time_seconds": "When the process started, seconds since 1970.",
    ]

    static func text(for family: String) -> String { texts[family] ?? "Application metric \(family)." }
}

/// `envoy_redis_masters` and `envoy_redis_masters_reachable`, read at each scrape: below the total, Redis is (partly)
/// down, which the alert rules in `deploy/` watch.
struct RedisGauges: Sendable {
    let masters: CoreMetrics.Gauge
    let reachable: CoreMetrics.Gauge

    init(metrics: any MetricsFactory) {
        masters = CoreMetrics.Gauge(label: "envoy_redis_masters", factory: metrics)
        reachable = CoreMetrics.Gauge(label: "envoy_redis_masters_reachable", factory: metrics)
    }

    func record(_ count: (reachable: Int, of: Int)) {
        masters.record(count.of)
        reachable.record(count.reachable)
    }
}

/// `process_*` (as Prometheus' own clients export them) and `envoy_build_info`, read from `/proc` at each scrape.
final class ProcessMetrics: Sendable {
    private let cpu: Prometheus.Counter
    private let cpuSeen = Mutex(0.0)
    private let resident: Prometheus.Gauge
    private let virtual: Prometheus.Gauge
    private let openFDs: Prometheus.Gauge
    private let maxFDs: Prometheus.Gauge
    private let started: Prometheus.Gauge

    init(registry: PrometheusCollectorRegistry, version: String) {
        let factory = DocumentedMetricsFactory(registry: registry)
        func gauge(_ name: String) -> Prometheus.Gauge { registry.makeGauge(descriptor: factory.descriptor(name)) }
        cpu = registry.makeCounter(descriptor: factory.descriptor("process_cpu_seconds_total"))
        resident = gauge("process_resident_memory_bytes")
        virtual = gauge("process_virtual_memory_bytes")
        openFDs = gauge("process_open_fds")
        maxFDs = gauge("process_max_fds")
        started = gauge("process_start_time_seconds")
        registry.makeGauge(descriptor: factory.descriptor("envoy_build_info"), labels: [("version", version)]).set(
            to: 1.0)
        started.set(Self.startTime() ?? Date().timeIntervalSince1970)
    }

    /// Reads `/proc/self` now.
    func update() {
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            if fields.count > 21, let user = Double(fields[11]), let system = Double(fields[12]),
                let pages = Double(fields[21]), let bytes = Double(fields[20])
            {
                let seconds = (user + system) / ticks
                let delta = cpuSeen.withLock { seen -> Double in
                    defer { seen = max(seen, seconds) }
                    return max(0, seconds - seen)
                }
                if delta > 0 { cpu.increment(by: delta) }
                resident.set(pages * Double(sysconf(Int32(_SC_PAGESIZE))))
                virtual.set(bytes)
            }
        }
        openFDs.set(Double((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count ?? 0))
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.set(Double(limit.rlim_cur)) }
    }

    /// The process's start, from its start tick in `/proc/self/stat` and the boot time in `/proc/stat`.
    static func startTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")"),
            let boot = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8))?.split(separator: "\n")
                .first(where: { $0.hasPrefix("btime ") }).flatMap({ Double($0.dropFirst(6)) })
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        return boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
