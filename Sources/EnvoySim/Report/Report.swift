import Foundation

/// A run's report (JSON schema version 1): latency and status per phase and request, rate-limit exactness, cache,
/// tasks, faults, a per-second timeline, the generator's own lag, and every expectation with its actual figure.
public struct Report: Codable, Sendable {
    /// The report format's version.
    public var schemaVersion = 1
    /// The scenario's name.
    public var scenario: String
    /// Its description.
    public var description: String?
    /// When the run started (ISO 8601).
    public var startedAt: String
    /// Whether `--quick` shortened it.
    public var quick: Bool
    /// False when the load generator could not keep its schedule (exit 2).
    public var valid: Bool
    /// Why the run is invalid.
    public var invalidReason: String?
    /// Redis on or off, workers.
    public var stack: StackSummary
    /// Per phase: offered and achieved rates, figures per request (`*`: all).
    public var phases: [PhaseReport]
    /// The whole run per request (`*`: all).
    public var totals: [String: Figures]
    /// Run-wide figures expectations can name (`over_admission`, `tasks_lost`, …).
    public var figures: [String: Double]
    /// The rate-limit policies and whether each was checked for exactness.
    public var rateLimits: [PolicyReport]
    /// Faults with what followed them.
    public var faults: [FaultReport]
    /// One entry per second of the run.
    public var timeline: [Tick]
    /// Every expectation and its outcome.
    public var expectations: [ExpectationResult]
    /// All expectations held (and the run was valid).
    public var passed: Bool

    /// Redis on or off, instances, workers.
    public struct StackSummary: Codable, Sendable {
        /// Whether a redis-server (or a cluster) backed the run.
        public var redis: Bool
        /// The cluster's masters (0: no cluster).
        public var redisMasters: Int
        /// The cluster's replicas per master.
        public var redisReplicas: Int
        /// `envoy serve` instances the load was spread over.
        public var instances: Int
        /// `envoy worker` processes.
        public var workers: Int
        /// Users created first.
        public var users: Int
    }

    /// Latency (from each request's intended send time, and service time) and statuses.
    public struct Figures: Codable, Sendable {
        /// Requests sent.
        public var sent: Int
        /// 2xx answers.
        public var ok: Int
        /// Answers by status code.
        public var statuses: [String: Int]
        /// 5xx answers.
        public var serverErrors: Int
        /// Requests with no answer (refused, timed out).
        public var transportErrors: Int
        /// Latency percentiles in ms, measured from the intended send time (no coordinated omission).
        public var p50Ms: Double
        /// p90.
        public var p90Ms: Double
        /// p99.
        public var p99Ms: Double
        /// p99.9.
        public var p999Ms: Double
        /// Maximum.
        public var maxMs: Double
        /// Service time (from the actual send) p50.
        public var serviceP50Ms: Double
        /// Service time p99.
        public var serviceP99Ms: Double
        /// `X-Cache` answers: HIT, MISS, BYPASS.
        public var cache: [String: Int]
        /// HIT / (HIT + MISS + BYPASS), or nil without cached answers.
        public var cacheHitRatio: Double?
        /// Requests per second over the phase (or run).
        public var achievedRps: Double
    }

    /// One phase.
    public struct PhaseReport: Codable, Sendable {
        /// Its name.
        public var name: String
        /// Seconds.
        public var duration: Double
        /// Scheduled requests per second.
        public var offeredRps: Double
        /// Figures per request name, `*` for all.
        public var requests: [String: Figures]
    }

    /// A rate-limit policy as checked.
    public struct PolicyReport: Codable, Sendable {
        /// Its name.
        public var name: String
        /// Requests allowed per window.
        public var limit: Int
        /// Window, seconds.
        public var window: Double
        /// Whether admissions were checked against it (sliding-log policies the sim's requests match).
        public var checked: Bool
        /// Requests admitted (not 429) that counted against it, over every key.
        public var admitted: Int
        /// Keys (users, addresses) it counted.
        public var keys: Int
    }

    /// A fault and its aftermath.
    public struct FaultReport: Codable, Sendable {
        /// The kind.
        public var kind: String
        /// Seconds from the start.
        public var at: Double
        /// How long it lasted.
        public var duration: Double
        /// Seconds from the fault to the first failed request (nil: none failed).
        public var firstErrorAfter: Double?
        /// Seconds from the fault's end to the last failed request it caused (0: none after its end).
        public var recoveryS: Double
        /// Failed requests (5xx, no answer) between the fault and recovery.
        public var errors: Int
        /// Why the fault could not be applied (nil: it was); such a run is not valid.
        public var error: String?
    }

    /// One second of the run.
    public struct Tick: Codable, Sendable {
        /// Second index from the start.
        public var t: Int
        /// Requests scheduled in that second.
        public var sent: Int
        /// 2xx answers among them.
        public var ok: Int
        /// 5xx or no answer.
        public var errors: Int
        /// Median latency, ms.
        public var p50Ms: Double
        /// p99 latency, ms.
        public var p99Ms: Double
    }

    /// An expectation with its actual figure.
    public struct ExpectationResult: Codable, Sendable {
        /// The figure.
        public var metric: String
        /// The phase it is about, if any.
        public var phase: String?
        /// The request it is about, if any.
        public var request: String?
        /// Lower bound.
        public var min: Double?
        /// Upper bound.
        public var max: Double?
        /// What the run measured (nil: the figure does not exist for this phase/request).
        public var actual: Double?
        /// Whether it held.
        public var passed: Bool

        /// `p99_ms[steady/profile] = 3.2 ≤ 50`.
        public var summary: String {
            let scope = [phase, request].compactMap { $0 }.joined(separator: "/")
            let bounds = [min.map { "≥ \(Report.number($0))" }, max.map { "≤ \(Report.number($0))" }].compactMap { $0 }
                .joined(separator: " and ")
            return
                "\(metric)\(scope.isEmpty ? "" : "[\(scope)]") = \(actual.map(Report.number) ?? "n/a") (want \(bounds))"
        }
    }

    /// The JSON encoding (snake_case keys, sorted).
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Decodes a report written by `json()`.
    public static func decode(_ data: Data) throws -> Report {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Report.self, from: data)
    }

    /// A figure for people: integers plain, others with up to 3 significant decimals.
    static func number(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
        return String(format: abs(value) >= 100 ? "%.0f" : abs(value) >= 10 ? "%.1f" : "%.2f", value)
    }
}

extension Report.StackSummary {
    /// `off`, `on` (one redis-server) or `a cluster of 3 masters × 1 replica`.
    var redisDescription: String {
        guard redis else { return "off" }
        guard redisMasters > 0 else { return "on" }
        return "a cluster of \(redisMasters) masters × \(redisReplicas) replica\(redisReplicas == 1 ? "" : "s")"
    }
}
