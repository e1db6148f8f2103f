import EnvoyTestSupport
import Foundation
import Testing

@testable import EnvoySim

#if canImport(Glibc)
    import Glibc
#endif

@Suite("envoy sim --capacity and the simulator's process hygiene")
struct CapacityTests {
    static func probe(
        _ rate: Double, cpu: [String: Double], passed: Bool, reason: String? = nil,
        redis: [CapacityReport.RedisNodeLoad] = []
    ) -> CapacityReport.Probe {
        CapacityReport.Probe(
            rate: rate, sent: Int(rate), achievedRps: rate, p50Ms: 1, p99Ms: 2, errorRatio: 0, scheduleLagP99Ms: 0,
            cpuCores: cpu, redisCommandsPerSecond: rate * 4, passed: passed, reason: reason, redisNodes: redis)
    }

    static func node(_ port: Int, _ role: String, cpu: Double) -> CapacityReport.RedisNodeLoad {
        .init(port: port, role: role, commandsPerSecond: cpu * 100_000, cpuCores: cpu)
    }

    @Test("the limiting resource names what ran out")
    func limitingResource() {
        #expect(
            Simulator.limitingResource(
                Self.probe(
                    900, cpu: ["envoy serve": 1.2, "redis-server": 0.6, "generator": 0.1], passed: false,
                    reason: "p99 40 ms"), cores: 2
            )
            .hasPrefix("CPU: the machine's 2 cores are saturated, envoy serve the busiest"))
        #expect(
            Simulator.limitingResource(
                Self.probe(
                    900, cpu: ["envoy serve": 0.5, "redis-server": 0.95], passed: false, reason: "p99 40 ms",
                    redis: [Self.node(6379, "master", cpu: 0.95)]),
                cores: 8
            )
            .hasPrefix("redis-server, single-threaded"))
        // A cluster: the hottest node decides, not the nodes' sum.
        let nodes = [
            Self.node(7000, "master", cpu: 0.5), Self.node(7001, "master", cpu: 0.4),
            Self.node(7002, "replica", cpu: 0.3),
        ]
        #expect(
            !Simulator.limitingResource(
                Self.probe(900, cpu: ["redis-server": 1.2], passed: false, reason: "p99 40 ms", redis: nodes), cores: 8
            ).hasPrefix("redis-server"))
        #expect(
            Simulator.limitingResource(
                Self.probe(
                    900, cpu: ["redis-server": 1.6], passed: false, reason: "p99 40 ms",
                    redis: nodes + [Self.node(7003, "master", cpu: 0.92)]), cores: 8
            ).hasPrefix("redis-server master on port 7003, single-threaded"))
        #expect(
            Simulator.limitingResource(
                Self.probe(
                    900, cpu: ["generator": 0.9], passed: false, reason: "the generator fell behind (lag p99 80 ms)"),
                cores: 2
            )
            .hasPrefix("the load generator"))
        #expect(
            Simulator.limitingResource(
                Self.probe(900, cpu: ["envoy serve": 0.3], passed: false, reason: "p99 40 ms"), cores: 8
            )
            .hasPrefix("latency (p99 40 ms) before CPU saturation"))
    }

    @Test(
        "the projection: instances by the sustainable rate, Redis commands by the mix, Redis cores by CPU per command")
    func projection() {
        let report = CapacityReport(
            scenario: "s", phase: "p", objectiveP99Ms: 10, errorBudget: 0.001, probes: [], sustainableRps: 3000,
            limitingResource: "CPU", redisCommandsPerRequest: ["read": 2, "write": 10], redisCPUMicrosPerCommand: 5,
            cores: 2, projection: nil)
        let planned = Simulator.project(report, target: 10_000, mix: ["read": 3, "write": 1])
        #expect(planned.projection?.appInstances == 4)
        #expect(planned.projection?.redisCommandsPerSecond == 40_000)  // 10,000 × (0.75·2 + 0.25·10)
        #expect(planned.projection.map { abs($0.redisCores - 0.2) < 1e-9 } == true)
        #expect(planned.markdown().contains("instances (this machine's size): 4"))
        #expect(planned.projection?.redisMasters == 1)
        #expect(Simulator.project(report, target: nil, mix: [:]).projection == nil)
        // 20× the load: 4 cores of Redis; the hottest master carries 1.5× the mean, so 8 masters keep it ≤ 0.8.
        var skewed = report
        skewed.redisHotMasterRatio = 1.5
        let big = Simulator.project(skewed, target: 200_000, mix: ["read": 3, "write": 1])
        #expect(big.projection.map { abs($0.redisCores - 4) < 1e-9 } == true)
        #expect(big.projection?.redisMasters == 8)  // ⌈4 × 1.5 / 0.8⌉ = ⌈7.5⌉
        #expect(big.markdown().contains("a Redis Cluster of 8 masters"))
    }

    @Test("the Universal Scalability Law: known costs are recovered, and the plan follows the fitted curve")
    func scalability() throws {
        let (lambda, sigma, kappa) = (1000.0, 0.05, 0.002)
        let points = [1, 2, 4, 8].map { n in
            Scalability.Point(
                instances: n,
                rps: lambda * Double(n) / (1 + sigma * Double(n - 1) + kappa * Double(n) * Double(n - 1)))
        }
        let fit = try #require(Scalability(points: points))
        #expect(abs(fit.lambda - lambda) < 1e-6 && abs(fit.sigma - sigma) < 1e-9 && abs(fit.kappa - kappa) < 1e-9)
        #expect(fit.peakInstances == 22)  // √((1 − σ)/κ) = √475 ≈ 21.8
        #expect(abs(fit.throughput(4) - points[2].rps) < 1e-6)
        let needed = try #require(fit.instances(for: 5000))
        #expect(fit.throughput(needed) >= 5000 && fit.throughput(needed - 1) < 5000)
        #expect(fit.instances(for: 1_000_000) == nil)  // beyond the peak: no count gets there

        // Linear scaling: σ = κ = 0, and the plan is the plain ratio.
        let linear = try #require(Scalability(points: [.init(instances: 1, rps: 600), .init(instances: 2, rps: 1200)]))
        #expect(linear.sigma == 0 && linear.kappa == 0 && linear.peakInstances == nil)
        #expect(linear.instances(for: 20_000) == 34)
        // Better than linear (noise) is clamped, never a negative cost; one count alone fits nothing.
        let noisy = try #require(Scalability(points: [.init(instances: 1, rps: 600), .init(instances: 2, rps: 1300)]))
        #expect(noisy.sigma >= 0 && noisy.kappa >= 0)
        #expect(Scalability(points: [.init(instances: 2, rps: 900)]) == nil)
    }

    @Test("CPU time of a process is read from /proc and grows while it works")
    func cpuClock() {
        let before = CPUClock.seconds(getpid())
        var x = 0.0
        for i in 0..<20_000_000 { x += Double(i).squareRoot() }
        #expect(x > 0)
        #expect(CPUClock.seconds(getpid()) > before)
        #expect(CPUClock.seconds(-1) == 0)
    }

    @Test("a short search on the real stack finds a rate, confirms it and counts Redis commands per request")
    func search() async throws {
        var scenario = try Scenario.decode(
            Data(
                """
                {"schema": 1, "name": "cap", "stack": {"redis": true, "workers": 1, "env": {"BCRYPT_COST": "4"}},
                 "users": {"count": 20},
                 "requests": {"r": {"path": "/v1/user/profile"}},
                 "phases": [{"name": "p", "duration": 2, "rate": 10, "mix": {"r": 1}}],
                 "capacity": {"objective_p99_ms": 2000, "start_rate": 20, "max_rate": 40, "step_seconds": 1,
                              "confirmations": 1, "target_rps": 400}}
                """.utf8))
        scenario.capacity.precision = 0.5
        // Other suites share this process and the 2 cores: the test is about the search, so the generator's lag
        // bound is loose.
        let report = try await SimTesting.simulator(maxScheduleLag: .seconds(2)).capacity(scenario)
        #expect(report.sustainableRps == 40, "\(report.markdown())")
        #expect(report.probes.count >= 3)  // 20, 40, the confirmation
        #expect(report.redisCommandsPerRequest["r"].map { $0 >= 1 } == true)
        #expect(report.projection?.appInstances == 10)
        #expect(report.probes.allSatisfy { $0.cpuCores["envoy serve"] != nil })
        // One redis-server: one node, the master, with every command.
        #expect(report.probes.allSatisfy { $0.redisNodes.count == 1 && $0.redisNodes[0].role == "master" })
        #expect(report.probes.allSatisfy { $0.redisNodes[0].commandsPerSecond == $0.redisCommandsPerSecond })
        #expect(report.redisHotMasterRatio == 1)
        // Then latency by request at half that rate, twice a step long.
        #expect(report.halfRate?.rate == 20)
        #expect(report.halfRate?.byRequest["r"].map { $0.sent >= 30 && $0.p50Ms <= $0.p99Ms } == true)
        // A cached route also by X-Cache; every answer is counted under one status.
        let byCache = ["HIT", "MISS", "BYPASS"].compactMap { report.halfRate?.byRequest["r (X-Cache: \($0))"]?.sent }
        #expect(report.halfRate?.byRequest["r (X-Cache: HIT)"].map { $0.sent > 0 } == true)
        #expect(byCache.reduce(0, +) == report.halfRate?.byRequest["r"]?.sent)
        #expect(report.markdown().contains("## At half the sustainable rate"))
    }

    @Test("on a Redis Cluster the search reports every node's commands and CPU, and plans masters")
    func clusterSearch() async throws {
        var scenario = try Scenario.decode(
            Data(
                """
                {"schema": 1, "name": "cap-cluster", "stack": {"redis": {"masters": 3, "replicas": 1}, "workers": 1,
                   "env": {"BCRYPT_COST": "4"}},
                 "users": {"count": 30},
                 "requests": {"r": {"path": "/v1/user/profile"}, "w": {"method": "PUT", "path": "/v1/user/profile",
                   "body": {"job_title": "x{{seq}}"}}},
                 "phases": [{"name": "p", "duration": 2, "rate": 10, "mix": {"r": 4, "w": 1}}],
                 "capacity": {"objective_p99_ms": 2000, "start_rate": 20, "max_rate": 20, "step_seconds": 2,
                              "confirmations": 0, "target_rps": 1000000}}
                """.utf8))
        scenario.capacity.precision = 0.5
        let report = try await SimTesting.simulator(maxScheduleLag: .seconds(2)).capacity(scenario)
        let probe = try #require(report.probes.last, "\(report.markdown())")
        #expect(probe.redisNodes.count == 6)
        let masters = probe.redisNodes.filter { $0.role == "master" }
        #expect(masters.count == 3)
        // 30 users' keys spread over the masters: each runs commands; replicas replay their masters' writes.
        #expect(masters.allSatisfy { $0.commandsPerSecond > 0 }, "\(probe.redisNodes)")
        #expect(probe.redisNodes.filter { $0.role == "replica" }.allSatisfy { $0.commandsPerSecond > 0 })
        #expect(abs(probe.redisCommandsPerSecond - masters.map(\.commandsPerSecond).reduce(0, +)) < 1e-6)
        #expect(report.redisHotMasterRatio >= 1 && report.redisHotMasterRatio < 3)
        // A million requests a second cannot be one Redis: the plan names the masters it takes.
        let planned = try #require(report.projection)
        #expect(planned.redisMasters > 1, "\(report.markdown())")
        #expect(report.markdown().contains("| replica |"))
    }

    @Test("Ctrl-C: envoy sim exits 3 and every process it started is gone")
    func interrupt() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sim-int-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let scenario = directory.appendingPathComponent("long.json")
        try Data(
            """
            {"schema": 1, "name": "long", "stack": {"redis": true, "workers": 1},
             "requests": {"h": {"path": "/health", "auth": "anonymous"}},
             "phases": [{"name": "p", "duration": 120, "rate": 5, "mix": {"h": 1}}]}
            """.utf8
        ).write(to: scenario)
        let sim = try ChildProcess(
            binary: ChildProcess.sibling("envoy"), arguments: ["sim", scenario.path, "--report-dir", directory.path],
            directory: directory,
            environment: ["EMAIL_TEMPLATES_DIR": SimTesting.root.appendingPathComponent("templates/email").path])
        var children: [Int32] = []
        for _ in 0..<200 where children.count < 3 {
            try await Task.sleep(for: .milliseconds(100))
            children = Self.children(of: sim.pid)
        }
        #expect(children.count >= 3, "redis-server, envoy serve, envoy worker: \(children) \(sim.log)")
        sim.signal(SIGINT)
        #expect(await sim.wait(timeout: .seconds(20)) == 3)
        #expect(await eventually(timeout: .seconds(10)) { children.allSatisfy { kill($0, 0) != 0 } }, "\(children)")
    }

    /// Processes whose parent is `pid`.
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { candidate in
            guard let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
    }
}
