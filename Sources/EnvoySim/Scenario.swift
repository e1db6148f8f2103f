import Foundation

/// A traffic scenario: phases of open-model load against routes, faults to inject, and expectations.
public struct Scenario: Codable, Sendable, Equatable {
    /// The scenario's name, shown in reports.
    public var name: String
    /// What it demonstrates.
    public var description: String?
    /// Load phases, run one after another.
    public var phases: [Phase]
    /// What must hold at the end for exit code 0.
    public var expectations: [Expectation]

    /// One stretch of load at a fixed arrival rate.
    public struct Phase: Codable, Sendable, Equatable {
        /// The phase's label.
        public var name: String
        /// Seconds it lasts.
        public var duration: Double
        /// Requests started per second (open model: independent of responses).
        public var rate: Double
        /// The request mix, picked by weight.
        public var requests: [RequestTemplate]
        /// A fault to inject when the phase starts, e.g. `redis_stop`, `worker_kill`.
        public var fault: String?
    }

    /// A request the load generator sends.
    public struct RequestTemplate: Codable, Sendable, Equatable {
        /// HTTP method.
        public var method: String
        /// Path, e.g. `/v1/user/profile`.
        public var path: String
        /// Relative weight within the phase's mix.
        public var weight: Double?
        /// JSON body, if any.
        public var body: String?
        /// Whether to send a logged-in user's token.
        public var authenticated: Bool?
    }

    /// A condition checked against the run's measurements.
    public struct Expectation: Codable, Sendable, Equatable {
        /// The measurement, e.g. `p99_ms`, `status_429`, `tasks_lost`.
        public var metric: String
        /// `<`, `<=`, `==`, `>=`, `>`.
        public var op: String
        /// The bound.
        public var value: Double
    }

    /// Reads and validates a scenario file; errors name the file's problem.
    public static func load(path: String) throws -> Scenario {
        guard let data = FileManager.default.contents(atPath: path) else { throw ScenarioError("cannot read the file") }
        let scenario: Scenario
        do {
            scenario = try JSONDecoder().decode(Scenario.self, from: data)
        } catch {
            throw ScenarioError("not a valid scenario: \(error)")
        }
        try scenario.validate()
        return scenario
    }

    /// Checks the values a replay depends on.
    public func validate() throws {
        if phases.isEmpty { throw ScenarioError("needs at least one phase") }
        for phase in phases {
            if !(phase.duration > 0) { throw ScenarioError("phase \(phase.name): duration must be positive") }
            if !(phase.rate > 0) { throw ScenarioError("phase \(phase.name): rate must be positive") }
            if phase.requests.isEmpty { throw ScenarioError("phase \(phase.name): needs at least one request") }
            for request in phase.requests where !request.path.hasPrefix("/") {
                throw ScenarioError("phase \(phase.name): path \(request.path) must start with /")
            }
        }
        for expectation in expectations where !["<", "<=", "==", ">=", ">"].contains(expectation.op) {
            throw ScenarioError("expectation on \(expectation.metric): unknown operator \(expectation.op)")
        }
    }
}

/// A scenario that cannot be replayed.
public struct ScenarioError: Error, CustomStringConvertible {
    /// What is wrong.
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
