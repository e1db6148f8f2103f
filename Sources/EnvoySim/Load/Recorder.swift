import Foundation
import Histogram
import Synchronization

/// What one request did, as the load generator saw it.
public struct Outcome: Sendable {
    /// The arrival it served.
    public var arrival: Arrival
    /// When it was actually sent, seconds from the start.
    public var sentAt: Double
    /// When its response was complete, seconds from the start.
    public var doneAt: Double
    /// The HTTP status, or nil for a transport error (refused, timed out).
    public var status: Int?
    /// The `X-Cache` header, if any.
    public var cache: String?
    /// Rate-limit counting keys this request was admitted under (policy name + subject), for the exactness check.
    public var limitKeys: [String] = []
}

/// Latency and status figures, per phase and request and per second of the run; HDR histograms in microseconds.
public final class Recorder: Sendable {
    /// Figures of one (phase, request) cell.
    struct Cell {
        var corrected = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var service = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var statuses: [Int: Int] = [:]
        var transportErrors = 0
        var cache: [String: Int] = [:]
        var sent = 0

        /// Answers with a 5xx status.
        var serverErrors: Int { statuses.filter { $0.key >= 500 }.values.reduce(0, +) }
        /// Requests that failed: a 5xx answer or none at all.
        var failed: Int { serverErrors + transportErrors }

        /// Counts one outcome (latencies in microseconds).
        mutating func record(_ outcome: Outcome, corrected: UInt64, service: UInt64) {
            sent += 1
            _ = self.corrected.record(corrected)
            _ = self.service.record(service)
            if let status = outcome.status {
                statuses[status, default: 0] += 1
            } else {
                transportErrors += 1
            }
            if let cache = outcome.cache { self.cache[cache, default: 0] += 1 }
        }
    }

    /// Figures of one second of the run.
    struct Second {
        var latency = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .two)
        var sent = 0
        var ok = 0
        var errors = 0
    }

    struct State {
        var cells: [String: Cell] = [:]
        var seconds: [Int: Second] = [:]
        var lag = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var admitted: [String: [(sent: Double, done: Double)]] = [:]
        var errorTimes: [Double] = []
    }

    let state = Mutex(State())

    /// An empty recorder.
    public init() {}

    /// The cell key of a phase and request; `*` aggregates.
    static func key(_ phase: String, _ request: String) -> String { "\(phase)\u{1F}\(request)" }

    /// The name under which a request's answers with `X-Cache: status` are also counted (all phases together).
    static func request(_ request: String, cache status: String) -> String { "\(request) (X-Cache: \(status))" }

    /// Records how late the generator sent a request against its schedule.
    public func recordLag(_ seconds: Double) {
        state.withLock { _ = $0.lag.record(UInt64(max(0, seconds) * 1_000_000)) }
    }

    /// Records one request's outcome under its phase's name.
    public func record(_ outcome: Outcome, phase: String) {
        let corrected = UInt64(max(0, outcome.doneAt - outcome.arrival.at) * 1_000_000)
        let service = UInt64(max(0, outcome.doneAt - outcome.sentAt) * 1_000_000)
        let failed = outcome.status.map { $0 >= 500 } ?? true
        state.withLock { state in
            for key in [
                Self.key(phase, outcome.arrival.request), Self.key(phase, "*"), Self.key("*", outcome.arrival.request),
                Self.key("*", "*"),
            ] {
                // Mutated in place: copying a cell out and back would copy its histograms' counts every time.
                state.cells[key, default: Cell()].record(outcome, corrected: corrected, service: service)
            }
            if let cache = outcome.cache {
                state.cells[Self.key("*", Self.request(outcome.arrival.request, cache: cache)), default: Cell()]
                    .record(outcome, corrected: corrected, service: service)
            }
            let second = Int(outcome.arrival.at)
            state.seconds[second, default: Second()].sent += 1
            _ = state.seconds[second, default: Second()].latency.record(corrected)
            if failed {
                state.seconds[second, default: Second()].errors += 1
            } else if (200..<300).contains(outcome.status ?? 0) {
                state.seconds[second, default: Second()].ok += 1
            }
            if failed { state.errorTimes.append(outcome.arrival.at) }
            if let status = outcome.status, status != 429, status < 500 {
                for key in outcome.limitKeys {
                    state.admitted[key, default: []].append((outcome.sentAt, outcome.doneAt))
                }
            }
        }
    }

    /// The largest number of requests admitted beyond a policy's limit within any of its windows, over every
    /// counting key. Only requests certainly decided inside a window count (sent at or after its start, answered
    /// by its end), so a positive figure is a real over-admission, never an artefact of latency.
    public func overAdmission(limits: [String: (limit: Int, window: Double)]) -> Int {
        state.withLock { state in
            var worst = 0
            for (key, admissions) in state.admitted {
                let policy = String(key.split(separator: "\u{1F}").first ?? "")
                guard let rule = limits[policy] else { continue }
                let sorted = admissions.sorted { $0.sent < $1.sent }
                for (index, first) in sorted.enumerated() {
                    let end = first.sent + rule.window
                    let inside = sorted[index...].prefix { $0.sent <= end }.filter { $0.done <= end }.count
                    worst = max(worst, inside - rule.limit)
                }
            }
            return worst
        }
    }
}
