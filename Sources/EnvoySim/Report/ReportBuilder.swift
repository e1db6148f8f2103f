import EnvoyFramework
import Foundation
import Histogram
import Synchronization

/// What happened to the work the run handed over: emails (at the mock Mailgun) and Paddle events (in the database).
struct TaskFigures {
    var accepted = 0
    var delivered = 0
    var lost = 0
    var duplicated = 0
    var emailLatency = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    var forgeriesAccepted = 0

    init() {}

    init(accounting: Accounting, messages: [MockMailgun.Message], processedEvents: Set<String>) {
        var copies: [String: Int] = [:]
        var first: [String: Date] = [:]
        for message in messages {
            for address in message.to.map({ $0.lowercased() }) {
                copies[address, default: 0] += 1
                first[address] = min(first[address] ?? message.receivedAt, message.receivedAt)
            }
        }
        var emailsDelivered = 0
        for (address, acceptedAt) in accounting.expectedEmails {
            guard let count = copies[address], let arrived = first[address] else { continue }
            emailsDelivered += 1
            duplicated += count - 1
            _ = emailLatency.record(UInt64(max(0, arrived.timeIntervalSince(acceptedAt)) * 1_000_000))
        }
        let eventsProcessed = accounting.acceptedEvents.intersection(processedEvents).count
        accepted = accounting.expectedEmails.count + accounting.acceptedEvents.count
        delivered = emailsDelivered + eventsProcessed
        lost = accepted - delivered
        forgeriesAccepted = accounting.forgeriesAccepted
    }
}

/// Assembles the report from what the run recorded, and evaluates the expectations.
struct ReportBuilder {
    let scenario: Scenario
    let quick: Bool
    let startedAt: Date
    let recorder: Recorder
    let policies: [RateLimitPolicy]
    let tasks: TaskFigures
    let server: ServerMetrics
    let faults: [FaultInjector.Applied]
    let loadEnd: Double
    let overloaded: Bool
    let maxLag: Duration

    func build() -> Report {
        let state = recorder.state.withLock { $0 }
        let total = scenario.phases.reduce(0) { $0 + $1.duration }
        func figures(_ phase: String, _ request: String, seconds: Double) -> Report.Figures? {
            state.cells[Recorder.key(phase, request)].map { Self.figures($0, seconds: seconds) }
        }
        let names = ["*"] + scenario.requests.keys.sorted()
        let phases = scenario.phases.map { phase in
            Report.PhaseReport(
                name: phase.name, duration: phase.duration,
                offeredRps: (phase.rate + (phase.rampTo ?? phase.rate)) / 2,
                requests: names.reduce(into: [:]) { $0[$1] = figures(phase.name, $1, seconds: phase.duration) })
        }
        let totals = names.reduce(into: [String: Report.Figures]()) { $0[$1] = figures("*", $1, seconds: total) }

        let limits = policies.filter { $0.algorithm == .slidingLog && !$0.shadow }
        var admitted: [String: (requests: Int, keys: Int)] = [:]
        for (key, admissions) in state.admitted {
            let policy = String(key.split(separator: "\u{1F}").first ?? "")
            admitted[policy, default: (0, 0)].requests += admissions.count
            admitted[policy, default: (0, 0)].keys += 1
        }
        let overAdmission = recorder.overAdmission(
            limits: limits.reduce(into: [:]) { $0[$1.name] = ($1.limit, $1.window) })
        let lagP99 = Double(state.lag.valueAtPercentile(99)) / 1000
        let hits = server.sum("envoy_cache_requests_total", ["result": "hit"])
        let lookups = server.sum("envoy_cache_requests_total")
        let appQueries = server.sum("envoy_db_queries_total", ["component": "app"])
        let faultReports = faults.map { fault in
            Self.aftermath(of: fault, errorTimes: state.errorTimes, until: loadEnd)
        }
        var run: [String: Double] = [
            "over_admission": Double(max(0, overAdmission)),
            "tasks_accepted": Double(tasks.accepted), "tasks_delivered": Double(tasks.delivered),
            "tasks_lost": Double(tasks.lost), "tasks_duplicated": Double(tasks.duplicated),
            "forgeries_accepted": Double(tasks.forgeriesAccepted),
            "schedule_lag_p99_ms": lagP99,
            "recovery_s": faultReports.map(\.recoveryS).max() ?? 0,
            "db_queries_saved": hits,
        ]
        if tasks.emailLatency.totalCount > 0 {
            run["task_latency_p99_ms"] = Double(tasks.emailLatency.valueAtPercentile(99)) / 1000
        }
        if lookups > 0 { run["server_cache_hit_ratio"] = hits / lookups }
        if hits + appQueries > 0 { run["db_queries_saved_ratio"] = hits / (hits + appQueries) }

        let lagLimit = maxLag.inSeconds * 1000
        let failedFault = faultReports.first { $0.error != nil }
        let invalidReason: String? =
            if let failedFault {
                "the fault \(failedFault.kind) at \(Report.number(failedFault.at)) s could not be applied: "
                    + (failedFault.error ?? "")
            } else if overloaded {
                "the generator hit its limit of requests in flight and fell behind its schedule"
            } else if lagP99 > lagLimit {
                "the generator fell behind its schedule (p99 lag \(Report.number(lagP99)) ms > \(Report.number(lagLimit)) ms)"
            } else {
                nil
            }
        var report = Report(
            scenario: scenario.name, description: scenario.description,
            startedAt: startedAt.formatted(Date.ISO8601FormatStyle()), quick: quick, valid: invalidReason == nil,
            invalidReason: invalidReason,
            stack: .init(
                redis: scenario.stack.redis.isEnabled,
                redisMasters: scenario.stack.redis.isCluster ? scenario.stack.redis.masters : 0,
                redisReplicas: scenario.stack.redis.isCluster ? scenario.stack.redis.replicas : 0,
                instances: scenario.stack.instances, workers: scenario.stack.workers,
                users: scenario.users.count),
            phases: phases, totals: totals, figures: run,
            rateLimits: limits.map {
                .init(
                    name: $0.name, limit: $0.limit, window: $0.window, checked: admitted[$0.name] != nil,
                    admitted: admitted[$0.name]?.requests ?? 0, keys: admitted[$0.name]?.keys ?? 0)
            },
            faults: faultReports,
            timeline: state.seconds.keys.sorted().map { second in
                let tick = state.seconds[second]!
                return Report.Tick(
                    t: second, sent: tick.sent, ok: tick.ok, errors: tick.errors,
                    p50Ms: Double(tick.latency.valueAtPercentile(50)) / 1000,
                    p99Ms: Double(tick.latency.valueAtPercentile(99)) / 1000)
            },
            expectations: [], passed: false)
        report.expectations = scenario.expect.map { Self.evaluate($0, in: report) }
        report.passed = report.valid && report.expectations.allSatisfy(\.passed)
        return report
    }

    static func figures(_ cell: Recorder.Cell, seconds: Double) -> Report.Figures {
        func ms(_ histogram: Histogram<UInt64>, _ percentile: Double) -> Double {
            histogram.totalCount == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
        }
        let ok = cell.statuses.filter { (200..<300).contains($0.key) }.values.reduce(0, +)
        let cached = cell.cache.values.reduce(0, +)
        return Report.Figures(
            sent: cell.sent, ok: ok,
            statuses: cell.statuses.reduce(into: [:]) { $0[String($1.key)] = $1.value },
            serverErrors: cell.serverErrors,
            transportErrors: cell.transportErrors,
            p50Ms: ms(cell.corrected, 50), p90Ms: ms(cell.corrected, 90), p99Ms: ms(cell.corrected, 99),
            p999Ms: ms(cell.corrected, 99.9), maxMs: Double(cell.corrected.max) / 1000,
            serviceP50Ms: ms(cell.service, 50), serviceP99Ms: ms(cell.service, 99), cache: cell.cache,
            cacheHitRatio: cached > 0 ? Double(cell.cache["HIT"] ?? 0) / Double(cached) : nil,
            achievedRps: Double(cell.sent) / max(seconds, 0.001))
    }

    /// The first failure after a fault, and how long failures went on after it ended (until the next quiet second).
    static func aftermath(of fault: FaultInjector.Applied, errorTimes: [Double], until end: Double)
        -> Report.FaultReport
    {
        let after = errorTimes.filter { $0 >= fault.at }.sorted()
        let faultEnd = fault.at + fault.duration
        var last = faultEnd
        var count = 0
        for time in after {
            guard time <= max(last, faultEnd) + 1 else { break }  // a quiet second ends this fault's errors
            last = max(last, time)
            count += 1
        }
        return Report.FaultReport(
            kind: fault.kind, at: fault.at, duration: fault.duration,
            firstErrorAfter: after.first.map { $0 - fault.at },
            recoveryS: max(0, last - faultEnd), errors: count, error: fault.error)
    }

    static func evaluate(_ expectation: Scenario.Expectation, in report: Report) -> Report.ExpectationResult {
        let actual: Double?
        if let value = report.figures[expectation.metric] {
            actual = value
        } else {
            let figures =
                expectation.phase.map { name in
                    report.phases.first { $0.name == name }?.requests[expectation.request ?? "*"]
                }
                ?? report.totals[expectation.request ?? "*"]
            actual = figures.flatMap { Self.value(expectation.metric, of: $0) }
        }
        let passed =
            actual.map { value in
                (expectation.min.map { value >= $0 } ?? true) && (expectation.max.map { value <= $0 } ?? true)
            } ?? false
        return Report.ExpectationResult(
            metric: expectation.metric, phase: expectation.phase, request: expectation.request, min: expectation.min,
            max: expectation.max, actual: actual, passed: passed)
    }

    static func value(_ metric: String, of figures: Report.Figures) -> Double? {
        if metric.hasPrefix("status_") { return Double(figures.statuses[String(metric.dropFirst(7))] ?? 0) }
        switch metric {
        case "sent": return Double(figures.sent)
        case "ok": return Double(figures.ok)
        case "server_errors": return Double(figures.serverErrors)
        case "transport_errors": return Double(figures.transportErrors)
        case "p50_ms": return figures.p50Ms
        case "p90_ms": return figures.p90Ms
        case "p99_ms": return figures.p99Ms
        case "p999_ms": return figures.p999Ms
        case "max_ms": return figures.maxMs
        case "service_p99_ms": return figures.serviceP99Ms
        case "achieved_rps": return figures.achievedRps
        case "cache_hit_ratio": return figures.cacheHitRatio
        default: return nil
        }
    }
}
