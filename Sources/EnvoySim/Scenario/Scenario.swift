import EnvoyFramework
import Foundation

/// A traffic scenario (schema 1): what stack to start, which users exist, the named requests, phases of
/// open-model load, faults at given times, and expectations on the report's figures.
public struct Scenario: Codable, Sendable, Equatable {
    /// The schema version this file is written for (1).
    public var schema: Int
    /// The scenario's name, shown in reports.
    public var name: String
    /// What it demonstrates.
    public var description: String?
    /// The processes to start.
    public var stack: Stack
    /// Users registered and logged in before the load starts (their tokens are reused).
    public var users: Users
    /// Named requests the phases mix.
    public var requests: [String: Request]
    /// Load phases, run one after another.
    public var phases: [Phase]
    /// Faults injected at given times.
    public var faults: [Fault]
    /// What must hold for exit code 0.
    public var expect: [Expectation]
    /// How `--quick` shortens the run.
    public var quick: Quick
    /// Seed of every random choice (arrivals, mix), so a run can be repeated.
    public var seed: UInt64
    /// How `envoy sim --capacity` searches for the highest sustainable rate.
    public var capacity: Capacity

    /// The capacity search: the objective a rate must meet, the search's bounds, and the load to plan for.
    public struct Capacity: Codable, Sendable, Equatable {
        /// The phase whose request mix is offered (default: the first).
        public var phase: String?
        /// p99 latency (from intended send time) a sustainable rate keeps under, ms.
        public var objectiveP99Ms: Double = 100
        /// Share of requests that may fail (5xx or no answer).
        public var errorBudget: Double = 0.001
        /// The first rate tried.
        public var startRate: Double = 50
        /// The search stops here.
        public var maxRate: Double = 50_000
        /// Seconds each probe offers load.
        public var stepSeconds: Double = 8
        /// The search stops when the bracket is this narrow (relative).
        public var precision: Double = 0.1
        /// Times the found rate is re-run to confirm it.
        public var confirmations: Int = 2
        /// Requests per second to plan for (instances, Redis capacity).
        public var targetRps: Double?
        /// Instance counts to search one after another (e.g. `[1, 2, 4]`), fitting the Universal Scalability
        /// Law to the results; nil searches `stack.instances` only.
        public var scaleInstances: [Int]?
    }

    /// The processes a run starts.
    public struct Stack: Codable, Sendable, Equatable {
        /// The Redis the app gets as `REDIS_URL`: `true` one `redis-server`, `false` none (the embedded
        /// providers), `{ "masters": 3, "replicas": 1 }` a Redis Cluster.
        public var redis: RedisTopology = .single
        /// `envoy serve` processes on the same Redis and database; requests go to them in turn, as a load
        /// balancer's round robin would send them.
        public var instances: Int = 1
        /// `envoy worker` processes beside `envoy serve --no-worker`.
        public var workers: Int = 1
        /// Extra environment for `envoy serve` and `envoy worker`.
        public var env: [String: String] = [:]
        /// Seconds to wait after the last phase for queued tasks to be delivered.
        public var drainSeconds: Double = 15
    }

    /// The Redis a run starts: none, one `redis-server`, or a Redis Cluster of masters with replicas each.
    public struct RedisTopology: Codable, Sendable, Equatable {
        /// 0: no Redis; 1: one `redis-server`; 3 or more: a Redis Cluster's masters.
        public var masters: Int
        /// Replicas of each master (a cluster's; `redis-cli --cluster create --cluster-replicas`).
        public var replicas: Int

        /// No Redis: the app uses its embedded providers.
        public static let none = RedisTopology(masters: 0, replicas: 0)
        /// One `redis-server`.
        public static let single = RedisTopology(masters: 1, replicas: 0)

        /// Creates a topology; use `none`, `single`, or at least 3 masters for a cluster.
        public init(masters: Int, replicas: Int) {
            self.masters = masters
            self.replicas = replicas
        }

        /// Whether the run has a Redis at all.
        public var isEnabled: Bool { masters > 0 }
        /// Whether it is a Redis Cluster.
        public var isCluster: Bool { masters > 1 }

        enum CodingKeys: String, CodingKey { case masters, replicas }

        /// Decodes `true`, `false` or `{ "masters": M, "replicas": R }`.
        public init(from decoder: any Decoder) throws {
            if let enabled = try? decoder.singleValueContainer().decode(Bool.self) {
                self = enabled ? .single : .none
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            masters = try c.decode(Int.self, forKey: .masters)
            replicas = try c.value(.replicas, or: 1)
        }

        /// Encodes as `true`/`false` for one or no `redis-server`, else as the object.
        public func encode(to encoder: any Encoder) throws {
            if !isCluster {
                var c = encoder.singleValueContainer()
                try c.encode(isEnabled)
            } else {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(masters, forKey: .masters)
                try c.encode(replicas, forKey: .replicas)
            }
        }
    }

    /// The users a run creates first.
    public struct Users: Codable, Sendable, Equatable {
        /// How many (each with its own client address).
        public var count: Int = 0
        /// Their password.
        public var password: String = "correct horse battery staple"
    }

    /// One kind of request.
    public struct Request: Codable, Sendable, Equatable {
        /// `http` (default), `paddle_webhook` (a signed event to the webhook route) or `bulk_email` (a
        /// `send_bulk_email` task queued directly, as application code would).
        public var kind: String = "http"
        /// HTTP method.
        public var method: String = "GET"
        /// Path; `{{seq}}`, `{{user.id}}` and `{{user.email}}` are filled in.
        public var path: String = "/"
        /// The route template the rate-limit policies match (default: `path`).
        public var route: String?
        /// `user` (a random user's token and address) or `anonymous`.
        public var auth: String = "user"
        /// A fixed client address (sent as `X-Forwarded-For`; the sim is the trusted proxy), e.g. an attacker's.
        public var clientIP: String?
        /// A JSON body; strings in it are templated like the path.
        public var body: JSONValue?
        /// For `paddle_webhook`: the event type.
        public var eventType: String?
        /// For `paddle_webhook`: the share of deliveries that repeat an earlier event (Paddle's retries).
        public var duplicateRatio: Double = 0
        /// For `paddle_webhook`: the share of deliveries with a forged signature.
        public var forgedRatio: Double = 0
        /// For `bulk_email`: recipients per bulk email.
        public var recipients: Int = 0
    }

    /// A stretch of load.
    public struct Phase: Codable, Sendable, Equatable {
        /// The phase's label.
        public var name: String
        /// Seconds it lasts.
        public var duration: Double
        /// Requests started per second at the start (open model: independent of responses).
        public var rate: Double
        /// Requests per second at the end (linear ramp); nil: constant.
        public var rampTo: Double?
        /// `poisson` (default) or `uniform` arrivals.
        public var arrival: String = "poisson"
        /// Request name → weight.
        public var mix: [String: Double]
    }

    /// A fault at a time.
    public struct Fault: Codable, Sendable, Equatable {
        /// Seconds from the start of the first phase.
        public var at: Double
        /// One of `Kind`'s names; kept as text so that an unknown kind is reported with its JSON path.
        public var kind: String
        /// How long it lasts, seconds.
        public var duration: Double = 0
        /// For provider errors: the status.
        public var status: Int = 503
        /// For provider errors: how many requests fail.
        public var count: Int = 1
        /// For `mailgun_slow` and `redis_latency`: milliseconds of delay.
        public var latencyMs: Int = 0
        /// For `redis_master_kill` and `redis_reshard`: the master serving this key's slot is the one killed or
        /// resharded from (nil: the master on the lowest port).
        public var key: String?
        /// For `redis_reshard`: how many slots move to the next master.
        public var slots: Int = 1000

        /// The fault's kind, nil when `kind` names none.
        public var known: Kind? { Kind(rawValue: kind) }

        /// Whether the fault is made by the proxy between the app and Redis.
        public var needsRedisProxy: Bool { known?.needsRedisProxy ?? false }

        /// What a fault does.
        public enum Kind: String, CaseIterable, Sendable {
            /// SIGKILL redis-server, restarted after `duration`.
            case redisDown = "redis_down"
            /// The proxy holds every byte for `duration`.
            case redisBlackhole = "redis_blackhole"
            /// The proxy delays each byte `latencyMs` for `duration`.
            case redisLatency = "redis_latency"
            /// SIGSTOP redis-server for `duration`.
            case redisStop = "redis_stop"
            /// SIGSTOP `envoy serve` for `duration`.
            case serverStall = "server_stall"
            /// SIGKILL every worker, restarted after `duration`.
            case workerKill = "worker_kill"
            /// The mock Mailgun answers the next `count` requests with `status`.
            case mailgunErrors = "mailgun_errors"
            /// The mock Paddle answers the next `count` requests with `status`.
            case paddleErrors = "paddle_errors"
            /// Every request to the mock Mailgun waits `latencyMs` for `duration`.
            case mailgunSlow = "mailgun_slow"
            /// SIGKILL a cluster master (`key`'s); its replica takes over; the node restarts after `duration`
            /// (once the failover is done) and rejoins as a replica.
            case redisMasterKill = "redis_master_kill"
            /// `redis-cli --cluster reshard`: move `slots` slots from a master (`key`'s) to the next, live.
            case redisReshard = "redis_reshard"

            /// Made by the proxy between the app and Redis.
            var needsRedisProxy: Bool { self == .redisBlackhole || self == .redisLatency }
            /// Acts on redis-server or on the way to it.
            var needsRedis: Bool { self == .redisDown || self == .redisStop || needsRedisProxy || needsCluster }
            /// Acts on a Redis Cluster.
            var needsCluster: Bool { self == .redisMasterKill || self == .redisReshard }
        }
    }

    /// A bound on one figure of the report.
    public struct Expectation: Codable, Sendable, Equatable {
        /// The figure (see the README's list), e.g. `p99_ms`, `status_429`, `over_admission`, `tasks_lost`.
        public var metric: String
        /// Only this phase (figures per request and phase).
        public var phase: String?
        /// Only this request.
        public var request: String?
        /// The figure must be at least this.
        public var min: Double?
        /// The figure must be at most this.
        public var max: Double?
    }

    /// `--quick`: phases scaled down in time (and optionally in rate), fewer users.
    public struct Quick: Codable, Sendable, Equatable {
        /// Multiplies every phase's duration and fault time.
        public var durationScale: Double = 0.3
        /// Multiplies every phase's rates (for scenarios whose full rate needs a release build).
        public var rateScale: Double = 1
        /// At most this many users.
        public var maxUsers: Int = 20
    }

    /// Every figure an expectation may name.
    public static let metrics: Set<String> = [
        "sent", "ok", "server_errors", "transport_errors", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
        "service_p99_ms", "achieved_rps", "cache_hit_ratio", "over_admission", "tasks_accepted", "tasks_delivered",
        "tasks_lost", "tasks_duplicated", "task_latency_p99_ms", "server_cache_hit_ratio", "db_queries_saved_ratio",
        "schedule_lag_p99_ms", "recovery_s", "forgeries_accepted",
    ]
}

extension Scenario {
    /// Reads and validates a scenario file; errors name the JSON path of the bad field.
    /// Relative paths in `stack.env` variables ending in `_FILE` are resolved against the file's directory.
    public static func load(path: String) throws(ScenarioError) -> Scenario {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ScenarioError(path: "", "cannot read \(path)")
        }
        var scenario = try decode(data)
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        for (name, value) in scenario.stack.env where name.hasSuffix("_FILE") && !value.hasPrefix("/") {
            let resolved = directory.appendingPathComponent(value).standardized.path
            guard FileManager.default.fileExists(atPath: resolved) else {
                throw ScenarioError(path: "stack.env.\(name)", "no file at \(resolved)")
            }
            scenario.stack.env[name] = resolved
        }
        return scenario
    }

    /// Decodes and validates scenario JSON.
    public static func decode(_ data: Data) throws(ScenarioError) -> Scenario {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let scenario: Scenario
        do {
            scenario = try decoder.decode(Scenario.self, from: data)
        } catch let error as DecodingError {
            throw ScenarioError(error)
        } catch {
            throw ScenarioError(path: "", "not JSON: \(error)")
        }
        try scenario.validate()
        return scenario
    }

    /// Checks what a replay depends on; the error names the path of the first bad field.
    public func validate() throws(ScenarioError) {
        guard schema == 1 else { throw ScenarioError(path: "schema", "must be 1 (this build reads schema 1)") }
        guard !name.isEmpty else { throw ScenarioError(path: "name", "must not be empty") }
        guard (0...16).contains(stack.workers) else { throw ScenarioError(path: "stack.workers", "must be 0…16") }
        guard (1...8).contains(stack.instances) else { throw ScenarioError(path: "stack.instances", "must be 1…8") }
        if stack.redis.isCluster {
            guard (3...16).contains(stack.redis.masters) else {
                throw ScenarioError(path: "stack.redis.masters", "a Redis Cluster needs 3…16 masters")
            }
            guard (0...2).contains(stack.redis.replicas) else {
                throw ScenarioError(path: "stack.redis.replicas", "must be 0…2 per master")
            }
        } else if stack.redis.masters < 0 || stack.redis.masters == 1 && stack.redis.replicas != 0 {
            throw ScenarioError(path: "stack.redis", "one redis-server has no replicas: use 3 or more masters")
        }
        if stack.instances > 1 && !stack.redis.isEnabled {
            throw ScenarioError(
                path: "stack.instances", "several instances share limits and caches through Redis: needs stack.redis")
        }
        guard users.count >= 0 && users.count <= 100_000 else {
            throw ScenarioError(path: "users.count", "must be 0…100000")
        }
        guard !phases.isEmpty else { throw ScenarioError(path: "phases", "needs at least one phase") }
        for (name, request) in requests.sorted(by: { $0.key < $1.key }) {
            let at = "requests.\(name)"
            guard ["http", "paddle_webhook", "bulk_email"].contains(request.kind) else {
                throw ScenarioError(path: "\(at).kind", "must be http, paddle_webhook or bulk_email")
            }
            guard request.path.hasPrefix("/") else { throw ScenarioError(path: "\(at).path", "must start with /") }
            guard ["user", "anonymous"].contains(request.auth) else {
                throw ScenarioError(path: "\(at).auth", "must be user or anonymous")
            }
            if request.auth == "user" && request.kind == "http" && users.count == 0 {
                throw ScenarioError(path: "\(at).auth", "is user but users.count is 0")
            }
            if let ip = request.clientIP, IPAddress(ip) == nil {
                throw ScenarioError(path: "\(at).client_ip", "is not an IP address")
            }
            if request.kind == "paddle_webhook" && request.eventType == nil {
                throw ScenarioError(path: "\(at).event_type", "is required for a paddle_webhook")
            }
            for (field, ratio) in [("duplicate_ratio", request.duplicateRatio), ("forged_ratio", request.forgedRatio)]
            where !(0...1).contains(ratio) {
                throw ScenarioError(path: "\(at).\(field)", "must be between 0 and 1")
            }
            if request.kind == "bulk_email" && !(1...100_000).contains(request.recipients) {
                throw ScenarioError(path: "\(at).recipients", "must be 1…100000")
            }
        }
        var phaseNames = Set<String>()
        for (index, phase) in phases.enumerated() {
            let at = "phases[\(index)]"
            guard phaseNames.insert(phase.name).inserted else {
                throw ScenarioError(path: "\(at).name", "is used twice")
            }
            guard phase.duration > 0 && phase.duration <= 3600 else {
                throw ScenarioError(path: "\(at).duration", "must be 0 < seconds ≤ 3600")
            }
            guard phase.rate >= 0, (phase.rampTo ?? 0) >= 0, phase.rate + (phase.rampTo ?? phase.rate) > 0 else {
                throw ScenarioError(path: "\(at).rate", "must be ≥ 0, with rate or ramp_to positive")
            }
            guard ["poisson", "uniform"].contains(phase.arrival) else {
                throw ScenarioError(path: "\(at).arrival", "must be poisson or uniform")
            }
            guard !phase.mix.isEmpty, phase.mix.values.contains(where: { $0 > 0 }) else {
                throw ScenarioError(path: "\(at).mix", "needs a request with a positive weight")
            }
            for (request, weight) in phase.mix.sorted(by: { $0.key < $1.key }) {
                guard requests[request] != nil else {
                    throw ScenarioError(path: "\(at).mix.\(request)", "names no request in requests")
                }
                guard weight >= 0 else { throw ScenarioError(path: "\(at).mix.\(request)", "must be ≥ 0") }
            }
        }
        let total = phases.reduce(0) { $0 + $1.duration }
        for (index, fault) in faults.enumerated() {
            let at = "faults[\(index)]"
            guard let kind = fault.known else {
                throw ScenarioError(
                    path: "\(at).kind",
                    "must be one of \(Fault.Kind.allCases.map(\.rawValue).sorted().joined(separator: ", "))")
            }
            guard fault.at >= 0 && fault.at < total else {
                throw ScenarioError(path: "\(at).at", "must fall within the phases (0 ≤ at < \(total))")
            }
            guard fault.duration >= 0 else { throw ScenarioError(path: "\(at).duration", "must be ≥ 0") }
            if kind.needsRedis && !stack.redis.isEnabled {
                throw ScenarioError(path: "\(at).kind", "needs stack.redis")
            }
            if kind.needsCluster && !stack.redis.isCluster {
                throw ScenarioError(path: "\(at).kind", "needs a Redis Cluster (stack.redis with masters)")
            }
            if kind == .redisMasterKill && stack.redis.replicas == 0 {
                throw ScenarioError(path: "\(at).kind", "needs replicas to fail over to (stack.redis.replicas ≥ 1)")
            }
            if kind.needsRedis && !kind.needsCluster && stack.redis.isCluster {
                throw ScenarioError(
                    path: "\(at).kind",
                    "acts on one redis-server; a cluster's faults are redis_master_kill and redis_reshard")
            }
            guard (1...16384).contains(fault.slots) else {
                throw ScenarioError(path: "\(at).slots", "must be 1…16384")
            }
            if kind == .workerKill && stack.workers == 0 {
                throw ScenarioError(path: "\(at).kind", "needs stack.workers ≥ 1")
            }
        }
        for (index, expectation) in expect.enumerated() {
            let at = "expect[\(index)]"
            guard
                Self.metrics.contains(expectation.metric)
                    || expectation.metric.range(of: #"^status_[1-5]\d\d$"#, options: .regularExpression) != nil
            else { throw ScenarioError(path: "\(at).metric", "is not a figure of the report") }
            guard expectation.min != nil || expectation.max != nil else {
                throw ScenarioError(path: at, "needs min or max")
            }
            if let phase = expectation.phase, !phaseNames.contains(phase) {
                throw ScenarioError(path: "\(at).phase", "names no phase")
            }
            if let request = expectation.request, requests[request] == nil {
                throw ScenarioError(path: "\(at).request", "names no request")
            }
        }
        guard quick.durationScale > 0 && quick.durationScale <= 1 else {
            throw ScenarioError(path: "quick.duration_scale", "must be 0 < scale ≤ 1")
        }
        if let phase = capacity.phase, !phaseNames.contains(phase) {
            throw ScenarioError(path: "capacity.phase", "names no phase")
        }
        guard capacity.startRate > 0, capacity.maxRate >= capacity.startRate else {
            throw ScenarioError(path: "capacity.start_rate", "must be positive and at most max_rate")
        }
        guard capacity.stepSeconds >= 1, capacity.precision > 0, capacity.precision < 1, capacity.confirmations >= 0
        else { throw ScenarioError(path: "capacity", "needs step_seconds ≥ 1, 0 < precision < 1, confirmations ≥ 0") }
        if let counts = capacity.scaleInstances {
            guard counts.count >= 2, Set(counts).count == counts.count, counts.allSatisfy({ (1...8).contains($0) })
            else { throw ScenarioError(path: "capacity.scale_instances", "needs 2 or more distinct counts of 1…8") }
            guard stack.redis.isEnabled else {
                throw ScenarioError(path: "capacity.scale_instances", "several instances need stack.redis")
            }
        }
        guard quick.rateScale > 0 && quick.rateScale <= 1 else {
            throw ScenarioError(path: "quick.rate_scale", "must be 0 < scale ≤ 1")
        }
    }

    /// The scenario `--quick` runs: phases and faults scaled in time, at most `quick.maxUsers` users.
    public var quickened: Scenario {
        var copy = self
        copy.phases = phases.map { phase in
            var phase = phase
            phase.duration = max(1, phase.duration * quick.durationScale)
            phase.rate *= quick.rateScale
            phase.rampTo = phase.rampTo.map { $0 * quick.rateScale }
            return phase
        }
        copy.faults = faults.map { fault in
            var fault = fault
            fault.at *= quick.durationScale
            fault.duration *= quick.durationScale
            return fault
        }
        copy.users.count = min(users.count, quick.maxUsers)
        copy.capacity.stepSeconds = max(2, capacity.stepSeconds * quick.durationScale)
        copy.capacity.confirmations = min(capacity.confirmations, 1)
        return copy
    }
}

// Decoding with defaults: every field but name, requests and phases may be left out.
extension Scenario {
    enum CodingKeys: String, CodingKey {
        case schema, name, description, stack, users, requests, phases, faults, expect, quick, seed, capacity
    }

    /// Decodes with defaults for optional sections.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decode(Int.self, forKey: .schema)
        name = try c.decode(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        stack = try c.decodeIfPresent(Stack.self, forKey: .stack) ?? Stack()
        users = try c.decodeIfPresent(Users.self, forKey: .users) ?? Users()
        requests = try c.decode([String: Request].self, forKey: .requests)
        phases = try c.decode([Phase].self, forKey: .phases)
        faults = try c.decodeIfPresent([Fault].self, forKey: .faults) ?? []
        expect = try c.decodeIfPresent([Expectation].self, forKey: .expect) ?? []
        quick = try c.decodeIfPresent(Quick.self, forKey: .quick) ?? Quick()
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 1
        capacity = try c.decodeIfPresent(Capacity.self, forKey: .capacity) ?? Capacity()
    }
}

/// A scenario that cannot be replayed, naming where in the file.
public struct ScenarioError: Error, CustomStringConvertible, Equatable {
    /// The JSON path of the bad field (`phases[1].mix.login`), empty for the whole file.
    public var path: String
    /// What is wrong.
    public var reason: String

    init(path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    init(_ error: DecodingError) {
        func render(_ codingPath: [any CodingKey]) -> String {
            codingPath.reduce(into: "") { path, key in
                if let index = key.intValue {
                    path += "[\(index)]"
                } else {
                    path += (path.isEmpty ? "" : ".") + Self.snake(key.stringValue)
                }
            }
        }
        switch error {
        case .keyNotFound(let key, let context):
            self.init(path: render(context.codingPath + [key]), "is required")
        case .typeMismatch(let type, let context):
            self.init(path: render(context.codingPath), "must be \(Self.describe(type))")
        case .valueNotFound(let type, let context):
            self.init(path: render(context.codingPath), "must be \(Self.describe(type)), not null")
        case .dataCorrupted(let context):
            self.init(path: render(context.codingPath), context.debugDescription)
        @unknown default:
            self.init(path: "", "\(error)")
        }
    }

    private static func snake(_ key: String) -> String {
        key.reduce(into: "") { $0 += $1.isUppercase ? "_" + $1.lowercased() : String($1) }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is UInt64.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default: "\(type)".hasPrefix("Array") ? "an array" : "an object"
        }
    }

    /// `path: reason`.
    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}

extension KeyedDecodingContainer {
    fileprivate func value<T: Decodable>(_ key: Key, or fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }
}

extension Scenario.Stack {
    enum CodingKeys: String, CodingKey { case redis, instances, workers, env, drainSeconds }

    /// Decodes with defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        redis = try c.value(.redis, or: .single)
        instances = try c.value(.instances, or: 1)
        workers = try c.value(.workers, or: 1)
        env = try c.value(.env, or: [:])
        drainSeconds = try c.value(.drainSeconds, or: 15)
    }
}

extension Scenario.Users {
    enum CodingKeys: String, CodingKey { case count, password }

    /// Decodes with defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = try c.value(.count, or: 0)
        password = try c.value(.password, or: "correct horse battery staple")
    }
}

extension Scenario.Request {
    enum CodingKeys: String, CodingKey {
        case kind, method, path, route, auth, clientIp, body, eventType, duplicateRatio, forgedRatio, recipients
    }

    /// Decodes with defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.value(.kind, or: "http")
        method = try c.value(.method, or: "GET")
        path = try c.value(.path, or: kind == "paddle_webhook" ? "/v1/payments/webhook" : "/")
        route = try c.decodeIfPresent(String.self, forKey: .route)
        auth = try c.value(.auth, or: kind == "http" ? "user" : "anonymous")
        clientIP = try c.decodeIfPresent(String.self, forKey: .clientIp)
        body = try c.decodeIfPresent(JSONValue.self, forKey: .body)
        eventType = try c.decodeIfPresent(String.self, forKey: .eventType)
        duplicateRatio = try c.value(.duplicateRatio, or: 0)
        forgedRatio = try c.value(.forgedRatio, or: 0)
        recipients = try c.value(.recipients, or: 0)
    }

    /// Encodes every field.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(method, forKey: .method)
        try c.encode(path, forKey: .path)
        try c.encodeIfPresent(route, forKey: .route)
        try c.encode(auth, forKey: .auth)
        try c.encodeIfPresent(clientIP, forKey: .clientIp)
        try c.encodeIfPresent(body, forKey: .body)
        try c.encodeIfPresent(eventType, forKey: .eventType)
        try c.encode(duplicateRatio, forKey: .duplicateRatio)
        try c.encode(forgedRatio, forKey: .forgedRatio)
        try c.encode(recipients, forKey: .recipients)
    }
}

extension Scenario.Phase {
    enum CodingKeys: String, CodingKey { case name, duration, rate, rampTo, arrival, mix }

    /// Decodes with defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        duration = try c.decode(Double.self, forKey: .duration)
        rate = try c.decode(Double.self, forKey: .rate)
        rampTo = try c.decodeIfPresent(Double.self, forKey: .rampTo)
        arrival = try c.value(.arrival, or: "poisson")
        mix = try c.decode([String: Double].self, forKey: .mix)
    }
}

extension Scenario.Fault {
    enum CodingKeys: String, CodingKey { case at, kind, duration, status, count, latencyMs, key, slots }

    /// Decodes with defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        at = try c.decode(Double.self, forKey: .at)
        kind = try c.decode(String.self, forKey: .kind)
        duration = try c.value(.duration, or: 0)
        status = try c.value(.status, or: 503)
        count = try c.value(.count, or: 1)
        latencyMs = try c.value(.latencyMs, or: 0)
        key = try c.decodeIfPresent(String.self, forKey: .key)
        slots = try c.value(.slots, or: 1000)
    }
}

extension Scenario.Capacity {
    enum CodingKeys: String, CodingKey {
        case phase, objectiveP99Ms, errorBudget, startRate, maxRate, stepSeconds, precision, confirmations, targetRps
        case scaleInstances
    }

    /// Decodes with defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        phase = try c.decodeIfPresent(String.self, forKey: .phase)
        objectiveP99Ms = try c.value(.objectiveP99Ms, or: 100)
        errorBudget = try c.value(.errorBudget, or: 0.001)
        startRate = try c.value(.startRate, or: 50)
        maxRate = try c.value(.maxRate, or: 50_000)
        stepSeconds = try c.value(.stepSeconds, or: 8)
        precision = try c.value(.precision, or: 0.1)
        confirmations = try c.value(.confirmations, or: 2)
        targetRps = try c.decodeIfPresent(Double.self, forKey: .targetRps)
        scaleInstances = try c.decodeIfPresent([Int].self, forKey: .scaleInstances)
    }
}

extension Scenario.Quick {
    enum CodingKeys: String, CodingKey { case durationScale, rateScale, maxUsers }

    /// Decodes with defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        durationScale = try c.value(.durationScale, or: 0.3)
        rateScale = try c.value(.rateScale, or: 1)
        maxUsers = try c.value(.maxUsers, or: 20)
    }
}
