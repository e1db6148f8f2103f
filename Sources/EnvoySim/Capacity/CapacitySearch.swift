import AsyncHTTPClient
import EnvoyFramework
import EnvoyPlugins
import Foundation
import Histogram
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The result of `envoy sim --capacity` (JSON schema version 1).
public struct CapacityReport: Codable, Sendable {
    /// The report format's version.
    public var schemaVersion = 1
    /// The scenario.
    public var scenario: String
    /// The phase whose mix was offered.
    public var phase: String
    /// The objective: p99 under this, ms.
    public var objectiveP99Ms: Double
    /// The error budget.
    public var errorBudget: Double
    /// Every probe, in the order run.
    public var probes: [Probe]
    /// The highest rate that met the objective and was confirmed (nil: not even the start rate did).
    public var sustainableRps: Double?
    /// What stopped a higher rate.
    public var limitingResource: String
    /// Redis commands per request, by request (INFO commandstats of the masters, script internals included).
    public var redisCommandsPerRequest: [String: Double]
    /// Redis CPU per command at the sustainable rate (the masters' CPU over their commands), microseconds.
    public var redisCPUMicrosPerCommand: Double?
    /// The hottest master's commands over the masters' mean at the sustainable rate (1: even, or one Redis).
    public var redisHotMasterRatio: Double = 1
    /// Processor cores of this machine.
    public var cores: Int
    /// The plan for `capacity.target_rps`, if given.
    public var projection: Projection?
    /// Throughput against instance count, when `capacity.scale_instances` asked for it.
    public var scaling: Scaling?
    /// A probe at half the sustainable rate, twice a step long, with latency by request (nil: no sustainable rate).
    public var halfRate: Probe?

    /// The searches at several instance counts and the Universal Scalability Law fitted to them.
    public struct Scaling: Codable, Sendable {
        /// Sustainable rate per instance count, and the fit (nil when fewer than two counts sustained any rate).
        public var fit: Scalability?
        /// Every count's sustainable rate (nil: not even the start rate) and what limited it.
        public var searches: [Search]
        /// Instances the fit predicts for `capacity.target_rps` (nil: unreachable, or no target or fit).
        public var projectedInstances: Int?

        /// One count's search.
        public struct Search: Codable, Sendable {
            /// `envoy serve` instances.
            public var instances: Int
            /// Their sustainable rate together.
            public var sustainableRps: Double?
            /// What stopped a higher rate.
            public var limitingResource: String
        }
    }

    /// One rate tried.
    public struct Probe: Codable, Sendable {
        /// Offered requests per second.
        public var rate: Double
        /// Requests sent.
        public var sent: Int
        /// Answered (not 5xx, not failed) per second, until the last answer.
        public var achievedRps: Double
        /// Latency from intended send time.
        public var p50Ms: Double
        /// p99 of the same.
        public var p99Ms: Double
        /// Failed share (5xx, no answer).
        public var errorRatio: Double
        /// The generator's own p99 lag behind schedule.
        public var scheduleLagP99Ms: Double
        /// CPU cores used per process during the probe (`envoy serve`, `envoy worker`, `redis-server` — every
        /// node together —, `generator`).
        public var cpuCores: [String: Double]
        /// Redis commands per second (the masters').
        public var redisCommandsPerSecond: Double
        /// Whether it met the objective.
        public var passed: Bool
        /// Why not.
        public var reason: String?
        /// Latency by request type, and for cached routes also by `X-Cache` (`profile (X-Cache: HIT)`).
        public var byRequest: [String: Latency] = [:]
        /// Each Redis process's share: one server, or every node of the cluster.
        public var redisNodes: [RedisNodeLoad] = []
    }

    /// One Redis process during a probe.
    public struct RedisNodeLoad: Codable, Sendable {
        /// Its port.
        public var port: Int
        /// `master` or `replica`.
        public var role: String
        /// Commands it ran per second (a replica's are its master's writes, replayed).
        public var commandsPerSecond: Double
        /// CPU cores it used.
        public var cpuCores: Double
    }

    /// One request type's latency during a probe, from intended send time.
    public struct Latency: Codable, Sendable {
        /// Requests sent.
        public var sent: Int
        /// Median, ms.
        public var p50Ms: Double
        /// 90th percentile, ms.
        public var p90Ms: Double
        /// 99th percentile, ms.
        public var p99Ms: Double
        /// 99.9th percentile, ms.
        public var p999Ms: Double
    }

    /// The share of a core a Redis master is planned to use at most (its commands run on one thread; the rest is
    /// headroom for bursts, persistence and replication).
    public static let masterCoreBudget = 0.8

    /// What the target load needs.
    public struct Projection: Codable, Sendable {
        /// Requests per second planned for.
        public var targetRps: Double
        /// `envoy serve` instances of this machine's size (each with its share of the sustainable rate).
        public var appInstances: Int
        /// Redis commands per second at the target.
        public var redisCommandsPerSecond: Double
        /// Redis CPU at the target, cores (one Redis process uses at most one core for commands).
        public var redisCores: Double
        /// Redis masters (one server, or a cluster's masters) that keep each under `Self.masterCoreBudget` of a core,
        /// the hottest carrying `redisHotMasterRatio` times the mean.
        public var redisMasters: Int
        /// One line of advice.
        public var note: String
    }

    /// The JSON encoding (snake_case keys, sorted).
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// The report for people.
    public func markdown() -> String {
        var out = "# Capacity: \(scenario)\n\n"
        out += "Objective: p99 ≤ \(Report.number(objectiveP99Ms)) ms from intended send time, errors ≤ "
        out +=
            "\(Report.number(errorBudget * 100)) %, achieved ≥ 99 % of offered; mix of phase `\(phase)`; \(cores) cores.\n\n"
        out +=
            "**Sustainable rate: \(sustainableRps.map { Report.number($0) + " requests/s" } ?? "below the start rate")**"
        out += " — limited by \(limitingResource).\n\n"
        out +=
            "| offered/s | achieved/s | p50 ms | p99 ms | errors | lag p99 ms | CPU cores | Redis cmd/s | verdict |\n"
        out += "|---|---|---|---|---|---|---|---|---|\n"
        for p in probes {
            let cpu = p.cpuCores.sorted { $0.key < $1.key }.map { "\($0.key) \(Report.number($0.value))" }
                .joined(separator: ", ")
            out += "| \(Report.number(p.rate)) | \(Report.number(p.achievedRps)) | \(Report.number(p.p50Ms)) | "
            out +=
                "\(Report.number(p.p99Ms)) | \(Report.number(p.errorRatio * 100)) % | \(Report.number(p.scheduleLagP99Ms)) | "
            out +=
                "\(cpu) | \(Report.number(p.redisCommandsPerSecond)) | \(p.passed ? "pass" : "fail: \(p.reason ?? "")") |\n"
        }
        out += "\n## Redis\n\n| request | commands per request |\n|---|---|\n"
        for (name, value) in redisCommandsPerRequest.sorted(by: { $0.key < $1.key }) {
            out += "| \(name) | \(Report.number(value)) |\n"
        }
        if let cpu = redisCPUMicrosPerCommand { out += "\nRedis CPU per command: \(Report.number(cpu)) µs.\n" }
        if let nodes = (probes.last { $0.passed && $0.rate == sustainableRps } ?? probes.last)?.redisNodes,
            !nodes.isEmpty
        {
            out += "\n| Redis node | role | commands/s | CPU cores |\n|---|---|---|---|\n"
            for node in nodes {
                out += "| \(node.port) | \(node.role) | \(Report.number(node.commandsPerSecond)) | "
                out += "\(Report.number(node.cpuCores)) |\n"
            }
            out +=
                "\nAt the sustainable rate; the hottest master ran \(Report.number(redisHotMasterRatio)) × the masters' "
            out += "mean.\n"
        }
        if let half = halfRate {
            out += "\n## At half the sustainable rate\n\n\(Report.number(half.rate)) requests/s offered for "
            out += "\(Report.number(Double(half.sent) / max(half.rate, 1))) s; generator lag p99 "
            out += "\(Report.number(half.scheduleLagP99Ms)) ms.\n\n"
            out += "| request | sent | p50 ms | p90 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|---|\n"
            for (name, latency) in half.byRequest.sorted(by: { $0.key < $1.key }) {
                out +=
                    "| \(name) | \(latency.sent) | \(Report.number(latency.p50Ms)) | \(Report.number(latency.p90Ms)) | "
                out += "\(Report.number(latency.p99Ms)) | \(Report.number(latency.p999Ms)) |\n"
            }
        }
        if let scaling {
            out += "\n## Scaling with instances\n\n| instances | sustainable/s | limited by |\n|---|---|---|\n"
            for search in scaling.searches {
                out += "| \(search.instances) | \(search.sustainableRps.map { Report.number($0) } ?? "—") | "
                out += "\(search.limitingResource) |\n"
            }
            if let fit = scaling.fit {
                out += "\nUniversal Scalability Law: λ = \(Report.number(fit.lambda)) requests/s per instance, "
                out += "σ = \(String(format: "%.4f", fit.sigma)), κ = \(String(format: "%.5f", fit.kappa))"
                out += fit.peakInstances.map { "; throughput peaks at \($0) instances" } ?? ""
                out += ".\n"
                if let target = projection?.targetRps {
                    out +=
                        scaling.projectedInstances.map { "Instances for \(Report.number(target)) requests/s: \($0).\n" }
                        ?? "\(Report.number(target)) requests/s is beyond what the fitted curve reaches.\n"
                }
            }
        }
        if let projection {
            out += "\n## Plan for \(Report.number(projection.targetRps)) requests/s\n\n"
            out += "- `envoy serve` instances (this machine's size): \(projection.appInstances)\n"
            out += "- Redis: \(Report.number(projection.redisCommandsPerSecond)) commands/s, "
            out += "\(Report.number(projection.redisCores)) cores; Redis masters: \(projection.redisMasters)\n"
            out += "- \(projection.note)\n"
        }
        return out
    }
}

/// CPU time of processes, from `/proc/PID/stat`.
enum CPUClock {
    /// Seconds of CPU (user + system) `pid` has used; 0 if unreadable.
    static func seconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14 and stime 15 (1-based over the whole line).
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

extension Simulator {
    /// Finds the highest rate of the scenario's mix that meets its capacity objective: doubles from the start
    /// rate until a probe fails, bisects the bracket to the precision, then re-runs the result to confirm it
    /// (stepping down when a confirmation fails). Measures Redis commands per request type and per-process CPU.
    /// With `capacity.scale_instances`, searches each instance count on a fresh stack and fits the Universal
    /// Scalability Law to the sustainable rates; the report is the first count's, with the scaling attached.
    public func capacity(_ original: Scenario) async throws -> CapacityReport {
        let scenario = options.quick ? original.quickened : original
        guard let counts = scenario.capacity.scaleInstances else { return try await search(scenario) }
        var reports: [(Int, CapacityReport)] = []
        for count in counts {
            var scaled = scenario
            scaled.stack.instances = count
            reports.append((count, try await search(scaled)))
        }
        let searches = reports.map { count, report in
            CapacityReport.Scaling.Search(
                instances: count, sustainableRps: report.sustainableRps, limitingResource: report.limitingResource)
        }
        let fit = Scalability(
            points: searches.compactMap { search in
                search.sustainableRps.map { .init(instances: search.instances, rps: $0) }
            })
        var report = reports[0].1
        report.scaling = .init(
            fit: fit, searches: searches,
            projectedInstances: scenario.capacity.targetRps.flatMap { target in fit?.instances(for: target) })
        return report
    }

    /// One configuration's search (the scenario's `stack.instances`).
    private func search(_ scenario: Scenario) async throws -> CapacityReport {
        let settings = scenario.capacity
        let phase = scenario.phases.first { $0.name == settings.phase } ?? scenario.phases[0]
        return try await withStack(scenario) { stack, client in
            let (driver, redisClient) = try await prepare(scenario, on: stack, client: client)
            defer { redisClient?.shutdown() }
            let redisNodes = try await Self.redisRoles(stack)
            let masters = redisNodes.filter { $0.role == "master" }.map(\.server)
            var probes: [CapacityReport.Probe] = []
            func probe(_ rate: Double, mix: [String: Double]? = nil, seconds: Double? = nil) async
                -> CapacityReport.Probe
            {
                let result = await self.probe(
                    rate: rate, mix: mix ?? phase.mix, seconds: seconds ?? settings.stepSeconds, driver: driver,
                    stack: stack, redisNodes: redisNodes, settings: settings)
                if mix == nil { probes.append(result) }
                try? await Task.sleep(for: .seconds(1))  // let queues and connections settle between probes
                return result
            }
            // Warm up (caches, connections, JIT-free but cold paths) at the start rate; not part of the search.
            _ = await probe(settings.startRate, mix: phase.mix, seconds: max(2, settings.stepSeconds / 2))
            var low: Double?
            var high: Double?
            var rate = settings.startRate
            while rate <= settings.maxRate {
                if await probe(rate).passed {
                    low = rate
                    rate *= 2
                } else {
                    high = rate
                    break
                }
            }
            if let lowRate = low, let highRate = high {
                var (lo, hi) = (lowRate, highRate)
                while (hi - lo) / lo > settings.precision {
                    let middle = (lo + hi) / 2
                    if await probe(middle).passed { lo = middle } else { hi = middle }
                }
                low = lo
            }
            var confirmed = low
            var attempts = 0
            while let candidate = confirmed, attempts < 3 {
                var held = true
                for _ in 0..<settings.confirmations where !(await probe(candidate).passed) { held = false }
                if held { break }
                attempts += 1
                confirmed =
                    candidate * (1 - settings.precision) >= settings.startRate
                    ? candidate * (1 - settings.precision) : nil
            }
            // The latency a service would run at: half the sustainable rate, by request type.
            var halfRate: CapacityReport.Probe?
            if let confirmed {
                halfRate = await probe(confirmed / 2, mix: phase.mix, seconds: settings.stepSeconds * 2)
            }
            // Redis commands per request, one request type at a time at a gentle rate.
            var perRequest: [String: Double] = [:]
            if !masters.isEmpty {
                for name in phase.mix.keys.sorted() where scenario.requests[name]?.kind != "bulk_email" {
                    let before = await Self.commandCalls(masters)
                    let single = await probe(
                        max(10, min(100, (confirmed ?? settings.startRate) / 4)), mix: [name: 1], seconds: 2)
                    let after = await Self.commandCalls(masters)
                    if single.sent > 0 { perRequest[name] = Double(after - before) / Double(single.sent) }
                }
            }
            let best = probes.last { $0.passed && $0.rate == confirmed }
            let failing = probes.filter { !$0.passed }.min { $0.rate < $1.rate }
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let masterLoads = (best?.redisNodes ?? []).filter { $0.role == "master" }
            let masterCommands = masterLoads.map(\.commandsPerSecond).reduce(0, +)
            var report = CapacityReport(
                scenario: scenario.name, phase: phase.name, objectiveP99Ms: settings.objectiveP99Ms,
                errorBudget: settings.errorBudget, probes: probes, sustainableRps: confirmed,
                limitingResource: Self.limitingResource(failing ?? best, cores: cores),
                redisCommandsPerRequest: perRequest,
                redisCPUMicrosPerCommand: masterCommands > 0
                    ? masterLoads.map(\.cpuCores).reduce(0, +) / masterCommands * 1e6 : nil,
                cores: cores, projection: nil, halfRate: halfRate)
            if masterCommands > 0, let hottest = masterLoads.map(\.commandsPerSecond).max() {
                report.redisHotMasterRatio = hottest / (masterCommands / Double(masterLoads.count))
            }
            return Self.project(report, target: settings.targetRps, mix: phase.mix)
        }
    }

    private func probe(
        rate: Double, mix: [String: Double], seconds: Double, driver: Driver, stack: SimStack,
        redisNodes: [(server: RedisServer, role: String)], settings: Scenario.Capacity
    ) async -> CapacityReport.Probe {
        let phase = Scenario.Phase(
            name: "probe", duration: seconds, rate: rate, rampTo: nil, arrival: "poisson", mix: mix)
        let arrivals = Schedule.arrivals(for: [phase], seed: UInt64(rate * 1000))
        let recorder = Recorder()
        var pids = [
            "envoy serve": stack.servers.map(\.pid),
            "envoy worker": stack.workers.withLock { $0.compactMap { $0?.pid } },
        ]
        if !redisNodes.isEmpty { pids["redis-server"] = redisNodes.map(\.server.pid) }
        pids["generator"] = [getpid()]
        let cpuBefore = pids.mapValues { $0.map(CPUClock.seconds).reduce(0, +) }
        let nodeCPUBefore = redisNodes.map { CPUClock.seconds($0.server.pid) }
        var callsBefore: [Int] = []
        for node in redisNodes { callsBefore.append(await node.server.commandCalls()) }
        let origin = ContinuousClock.now
        let overloaded = await Self.drive(
            arrivals, phases: ["probe"], driver: driver, recorder: recorder, origin: origin)
        let elapsed = (ContinuousClock.now - origin).inSeconds
        let cpu = pids.mapValues { $0.map(CPUClock.seconds).reduce(0, +) }.reduce(into: [String: Double]()) {
            $0[$1.key] = ($1.value - (cpuBefore[$1.key] ?? 0)) / elapsed
        }
        var loads: [CapacityReport.RedisNodeLoad] = []
        for (index, node) in redisNodes.enumerated() {
            let calls = await node.server.commandCalls()
            loads.append(
                .init(
                    port: node.server.port, role: node.role,
                    commandsPerSecond: Double(calls - callsBefore[index]) / elapsed,
                    cpuCores: (CPUClock.seconds(node.server.pid) - nodeCPUBefore[index]) / elapsed))
        }
        let state = recorder.state.withLock { $0 }
        let cell = state.cells[Recorder.key("*", "*")]
        let sent = cell?.sent ?? 0
        let failed = cell?.failed ?? 0
        let answered = Double(sent - failed)
        let p99 = Double(cell?.corrected.valueAtPercentile(99) ?? 0) / 1000
        let lag = Double(state.lag.valueAtPercentile(99)) / 1000
        let errorRatio = sent > 0 ? Double(failed) / Double(sent) : 0
        // Answers per second over the probe, allowing the last answers the objective's latency to arrive; a server
        // that falls behind stretches the tail and so lowers this below the offered rate.
        let achieved = answered / max(seconds, elapsed - settings.objectiveP99Ms / 1000)
        let offered = Double(sent) / seconds
        var reason: String?
        if overloaded || lag > options.maxScheduleLag.inSeconds * 1000 {
            reason = "the generator fell behind (lag p99 \(Report.number(lag)) ms)"
        } else if errorRatio > settings.errorBudget {
            reason = "errors \(Report.number(errorRatio * 100)) %"
        } else if p99 > settings.objectiveP99Ms {
            reason = "p99 \(Report.number(p99)) ms"
        } else if achieved < 0.99 * offered {
            reason = "achieved \(Report.number(achieved))/s of \(Report.number(offered))/s"
        }
        let commands = loads.filter { $0.role == "master" }.map(\.commandsPerSecond).reduce(0, +)
        var byRequest: [String: CapacityReport.Latency] = [:]
        // Cached routes also by cache status: a hit's latency apart from the misses that follow invalidations.
        let names = mix.keys.flatMap { name in
            [name] + ["HIT", "MISS", "BYPASS"].map { Recorder.request(name, cache: $0) }
        }
        for name in names {
            guard let histogram = state.cells[Recorder.key("*", name)]?.corrected, histogram.totalCount > 0 else {
                continue
            }
            func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
            byRequest[name] = .init(
                sent: state.cells[Recorder.key("*", name)]?.sent ?? 0, p50Ms: ms(50), p90Ms: ms(90), p99Ms: ms(99),
                p999Ms: ms(99.9))
        }
        return CapacityReport.Probe(
            rate: rate, sent: sent, achievedRps: achieved,
            p50Ms: Double(cell?.corrected.valueAtPercentile(50) ?? 0) / 1000,
            p99Ms: p99, errorRatio: errorRatio, scheduleLagP99Ms: lag, cpuCores: cpu, redisCommandsPerSecond: commands,
            passed: reason == nil, reason: reason, byRequest: byRequest, redisNodes: loads)
    }

    /// Every Redis process of the stack with its role: the one server is a master; a cluster's roles as it says.
    static func redisRoles(_ stack: SimStack) async throws -> [(server: RedisServer, role: String)] {
        guard let cluster = stack.redisCluster else { return stack.redisNodes.map { ($0, "master") } }
        let masters = Set(try await cluster.masters().map(\.port))
        return cluster.nodes.map { ($0, masters.contains($0.port) ? "master" : "replica") }
    }

    /// Commands `servers` have run together.
    static func commandCalls(_ servers: [RedisServer]) async -> Int {
        var calls = 0
        for server in servers { calls += await server.commandCalls() }
        return calls
    }

    /// Names what ran out at `probe`: the machine's CPU, one process, the generator, or latency before any.
    static func limitingResource(_ probe: CapacityReport.Probe?, cores: Int) -> String {
        guard let probe else { return "nothing measured" }
        let used = probe.cpuCores.values.reduce(0, +)
        let busiest = probe.cpuCores.max { $0.value < $1.value }
        let detail = probe.cpuCores.sorted { $0.value > $1.value }.map { "\($0.key) \(Report.number($0.value))" }
            .joined(separator: ", ")
        if probe.reason?.hasPrefix("the generator") == true || (probe.cpuCores["generator"] ?? 0) >= 0.8 {
            return "the load generator, sharing this machine (CPU cores: \(detail)); run the stack elsewhere for a "
                + "server-bound figure"
        }
        let hottest = probe.redisNodes.max { $0.cpuCores < $1.cpuCores }
        if let hottest, hottest.cpuCores >= 0.9 {
            let node = probe.redisNodes.count > 1 ? " \(hottest.role) on port \(hottest.port)" : ""
            return
                "redis-server\(node), single-threaded at \(Report.number(hottest.cpuCores)) core (CPU cores: \(detail))"
        }
        if used >= 0.85 * Double(cores) {
            return
                "CPU: the machine's \(cores) cores are saturated, \(busiest?.key ?? "?") the busiest (CPU cores: \(detail))"
        }
        return "latency (\(probe.reason ?? "p99")) before CPU saturation (CPU cores: \(detail))"
    }

    /// Adds the plan for `target` requests per second.
    static func project(_ report: CapacityReport, target: Double?, mix: [String: Double]) -> CapacityReport {
        guard let target, let sustainable = report.sustainableRps, sustainable > 0 else { return report }
        var report = report
        let totalWeight = mix.values.reduce(0, +)
        let commandsPerRequest = mix.reduce(0.0) { sum, entry in
            sum + (report.redisCommandsPerRequest[entry.key] ?? 0) * entry.value / max(totalWeight, 1e-9)
        }
        let commands = target * commandsPerRequest
        let redisCores = report.redisCPUMicrosPerCommand.map { commands * $0 / 1e6 } ?? 0
        // n masters share the cores; the hottest carries ratio/n of them and must stay within the budget.
        let masters = max(
            1, Int((redisCores * report.redisHotMasterRatio / CapacityReport.masterCoreBudget).rounded(.up)))
        let note =
            masters > 1
            ? "one Redis would be saturated: a Redis Cluster of \(masters) masters (each under "
                + "\(Report.number(CapacityReport.masterCoreBudget * 100)) % of a core), or cut commands per request"
            : "one Redis process suffices (\(Report.number(redisCores * 100)) % of a core)"
        report.projection = .init(
            targetRps: target, appInstances: Int((target / sustainable).rounded(.up)), redisCommandsPerSecond: commands,
            redisCores: redisCores, redisMasters: masters, note: note)
        return report
    }
}
