import EnvoyTestSupport
import Foundation
import Testing

@testable import EnvoySim

@Suite("envoy sim: scenarios, schedules, measurement, expectations, reports")
struct SimulatorTests {
    static func scenario(_ json: String) throws(ScenarioError) -> Scenario {
        try Scenario.decode(Data(json.utf8))
    }

    static let minimal = """
        {"schema": 1, "name": "t", "users": {"count": 1},
         "requests": {"r": {"path": "/v1/user/profile"}},
         "phases": [{"name": "p", "duration": 2, "rate": 10, "mix": {"r": 1}}]}
        """

    /// The minimal scenario with `fields` (JSON members, comma-separated) added at its top level.
    static func minimal(adding fields: String) -> String {
        minimal.replacingOccurrences(of: #""users": {"count": 1},"#, with: #""users": {"count": 1}, "# + fields + ",")
    }

    @Test("validation errors name the JSON path of the bad field")
    func validation() throws {
        _ = try Self.scenario(Self.minimal)
        // Fields added to the minimal scenario, and the path each error must name.
        let added: [(String, String)] = [
            (#""capacity": {"scale_instances": [2, 2]}"#, "capacity.scale_instances"),
            (#""faults": [{"at": 5, "kind": "redis_down"}]"#, "faults[0].at"),
            (#""faults": [{"at": 1, "kind": "redis_melt"}]"#, "faults[0].kind"),
            (
                #""stack": {"redis": false}, "faults": [{"at": 1, "kind": "redis_latency", "latency_ms": 5}]"#,
                "faults[0].kind"
            ),
            (#""stack": {"workers": 0}, "faults": [{"at": 1, "kind": "worker_kill"}]"#, "faults[0].kind"),
            (#""expect": [{"metric": "speed", "max": 1}]"#, "expect[0].metric"),
            (#""stack": {"redis": {"masters": 2}}"#, "stack.redis.masters"),
            (#""stack": {"redis": {"masters": 3, "replicas": 3}}"#, "stack.redis.replicas"),
            (#""faults": [{"at": 1, "kind": "redis_master_kill"}]"#, "faults[0].kind"),
            (
                #""stack": {"redis": {"masters": 3, "replicas": 0}}, "faults": [{"at": 1, "kind": "redis_master_kill"}]"#,
                "faults[0].kind"
            ),
            (
                #""stack": {"redis": {"masters": 3}}, "faults": [{"at": 1, "kind": "redis_down", "duration": 1}]"#,
                "faults[0].kind"
            ),
            (
                #""stack": {"redis": {"masters": 3}}, "faults": [{"at": 1, "kind": "redis_reshard", "slots": 0}]"#,
                "faults[0].slots"
            ),
        ]
        // The minimal scenario edited.
        let edited: [(String, String)] = [
            (Self.minimal.replacingOccurrences(of: #""schema": 1"#, with: #""schema": 2"#), "schema"),
            (Self.minimal.replacingOccurrences(of: #""rate": 10"#, with: #""rate": "fast""#), "phases[0].rate"),
            (Self.minimal.replacingOccurrences(of: #"{"r": 1}"#, with: #"{"nope": 1}"#), "phases[0].mix.nope"),
            (Self.minimal.replacingOccurrences(of: #""duration": 2, "#, with: ""), "phases[0].duration"),
            (
                Self.minimal.replacingOccurrences(of: #""path": "/v1/user/profile""#, with: #""path": "v1""#),
                "requests.r.path"
            ),
            (
                Self.minimal.replacingOccurrences(
                    of: #""path": "/v1/user/profile""#, with: #""path": "/", "client_ip": "300.1.1.1""#),
                "requests.r.client_ip"
            ),
        ]
        let cases = edited + added.map { (Self.minimal(adding: $0.0), $0.1) }
        for (json, path) in cases {
            #expect(throws: ScenarioError.self, "\(path)") { try Self.scenario(json) }
            do {
                _ = try Self.scenario(json)
            } catch {
                #expect(error.path == path, "\(error)")
            }
        }
    }

    @Test("stack.redis: true, false, or a cluster's masters and replicas; each round-trips")
    func redisTopology() throws {
        func stack(_ redis: String) throws -> Scenario.Stack {
            try Self.scenario(
                Self.minimal(adding: #""stack": {"redis": \#(redis)}"#)
            ).stack
        }
        #expect(try stack("true").redis == .single)
        #expect(try stack("false").redis == .none)
        let cluster = try stack(#"{"masters": 4, "replicas": 2}"#).redis
        #expect(cluster == .init(masters: 4, replicas: 2) && cluster.isCluster && cluster.isEnabled)
        #expect(try stack(#"{"masters": 3}"#).redis.replicas == 1)
        for topology in [Scenario.RedisTopology.none, .single, cluster] {
            let data = try JSONEncoder().encode(topology)
            #expect(try JSONDecoder().decode(Scenario.RedisTopology.self, from: data) == topology)
        }
    }

    @Test("a fault that could not be applied makes the run invalid, and the report says why")
    func faultNotApplied() throws {
        let report = ReportBuilder(
            scenario: try Self.scenario(Self.minimal), quick: false, startedAt: Date(), recorder: Recorder(),
            policies: [],
            tasks: TaskFigures(), server: ServerMetrics(text: ""),
            faults: [
                .init(kind: "redis_master_kill", at: 1, duration: 0.1, error: "no live master")
            ], loadEnd: 2, overloaded: false, maxLag: .seconds(1)
        ).build()
        #expect(!report.valid && !report.passed)
        #expect(
            report.invalidReason?.contains("redis_master_kill at 1 s could not be applied: no live master") == true,
            "\(report.invalidReason ?? "")")
        #expect(report.terminalSummary().contains("NOT APPLIED: no live master"))
    }

    @Test("every scenario in scenarios/ is valid")
    func repositoryScenarios() throws {
        let directory = SimTesting.root.appendingPathComponent("scenarios")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }
        #expect(files.count >= 7)
        for file in files { _ = try Scenario.load(path: directory.appendingPathComponent(file).path) }
    }

    @Test(
        "schedules: uniform is evenly spaced, Poisson has the right count, ramps put more load late, mixes keep weights"
    )
    func schedules() throws {
        func phase(_ rate: Double, _ rampTo: Double? = nil, arrival: String, mix: [String: Double] = ["a": 1])
            -> Scenario.Phase
        {
            Scenario.Phase(name: "p", duration: 10, rate: rate, rampTo: rampTo, arrival: arrival, mix: mix)
        }
        let uniform = Schedule.arrivals(for: [phase(100, arrival: "uniform")], seed: 7)
        #expect(uniform.count == 1000)
        let gaps = zip(uniform.dropFirst(), uniform).map { $0.at - $1.at }
        #expect(gaps.allSatisfy { abs($0 - 0.01) < 1e-9 })
        let poisson = Schedule.arrivals(for: [phase(100, arrival: "poisson")], seed: 7)
        #expect(abs(poisson.count - 1000) < 100)  // ±3σ of a Poisson count of mean 1000
        #expect(poisson.map(\.at) == Schedule.arrivals(for: [phase(100, arrival: "poisson")], seed: 7).map(\.at))
        let ramp = Schedule.arrivals(for: [phase(0, 200, arrival: "uniform")], seed: 1)
        #expect(abs(ramp.count - 1000) <= 1)
        #expect(ramp.filter { $0.at < 5 }.count == 250)  // ∫0..5 of 20t dt
        let mixed = Schedule.arrivals(for: [phase(1000, arrival: "uniform", mix: ["a": 3, "b": 1])], seed: 3)
        let share = Double(mixed.filter { $0.request == "a" }.count) / Double(mixed.count)
        #expect(abs(share - 0.75) < 0.03)
        let two = Schedule.arrivals(for: [phase(10, arrival: "uniform"), phase(10, arrival: "uniform")], seed: 1)
        #expect(two.filter { $0.phase == 1 }.allSatisfy { $0.at >= 10 })
    }

    @Test("over-admission counts only admissions certainly inside one window")
    func overAdmission() {
        let recorder = Recorder()
        func admit(_ sent: Double, _ done: Double, key: String = "login\u{1F}ip:1") {
            recorder.record(
                Outcome(
                    arrival: Arrival(at: sent, phase: 0, request: "x"), sentAt: sent, doneAt: done, status: 401,
                    limitKeys: [key]),
                phase: "p")
        }
        for t in 0..<5 { admit(Double(t), Double(t) + 0.1) }
        #expect(recorder.overAdmission(limits: ["login": (5, 10)]) == 0)
        admit(11, 11.1)  // the window from t=0 closed at 10: still exact
        #expect(recorder.overAdmission(limits: ["login": (5, 10)]) == 0)
        admit(9, 9.5)  // six inside [0, 10]
        #expect(recorder.overAdmission(limits: ["login": (5, 10)]) == 1)
        let slow = Recorder()
        for t in 0..<6 {
            slow.record(
                Outcome(
                    arrival: Arrival(at: Double(t), phase: 0, request: "x"), sentAt: Double(t), doneAt: Double(t) + 20,
                    status: 200, limitKeys: ["k\u{1F}a"]),
                phase: "p")
        }
        #expect(slow.overAdmission(limits: ["k": (5, 10)]) == 0, "answers after the window are not certainly inside it")
    }

    @Test("expectations: bounds, per phase and request, missing figures fail")
    func expectations() throws {
        let recorder = Recorder()
        for n in 0..<100 {
            recorder.record(
                Outcome(
                    arrival: Arrival(at: Double(n) / 100, phase: 0, request: "r"), sentAt: Double(n) / 100,
                    doneAt: Double(n) / 100 + (n == 99 ? 0.5 : 0.002), status: n < 90 ? 200 : 429,
                    cache: n < 45 ? "HIT" : "MISS"),
                phase: "p")
        }
        var scenario = try Self.scenario(Self.minimal)
        scenario.expect = [
            .init(metric: "status_429", request: "r", min: 10, max: 10),
            .init(metric: "p50_ms", phase: "p", request: "r", max: 5),
            .init(metric: "max_ms", max: 100),
            .init(metric: "cache_hit_ratio", request: "r", min: 0.5),
            .init(metric: "task_latency_p99_ms", max: 1),
            .init(metric: "tasks_lost", max: 0),
        ]
        let report = ReportBuilder(
            scenario: scenario, quick: false, startedAt: Date(), recorder: recorder, policies: [], tasks: TaskFigures(),
            server: ServerMetrics(text: ""), faults: [], loadEnd: 1, overloaded: false, maxLag: .milliseconds(50)
        ).build()
        #expect(report.expectations.map(\.passed) == [true, true, false, false, false, true])
        #expect(report.expectations[2].actual.map { $0 >= 500 && $0 < 502 } == true)
        #expect(report.expectations[3].actual == 0.45)
        #expect(report.expectations[4].actual == nil)
        #expect(!report.passed && report.valid)
        let behind = ReportBuilder(
            scenario: scenario, quick: false, startedAt: Date(), recorder: recorder, policies: [], tasks: TaskFigures(),
            server: ServerMetrics(text: ""), faults: [], loadEnd: 1, overloaded: true, maxLag: .milliseconds(50)
        ).build()
        #expect(!behind.valid && behind.verdict == "INVALID" && behind.invalidReason?.contains("fell behind") == true)
        recorder.recordLag(0.2)
        recorder.recordLag(0.2)
        let lagging = ReportBuilder(
            scenario: scenario, quick: false, startedAt: Date(), recorder: recorder, policies: [], tasks: TaskFigures(),
            server: ServerMetrics(text: ""), faults: [], loadEnd: 1, overloaded: false, maxLag: .milliseconds(50)
        ).build()
        #expect(!lagging.valid && lagging.figures["schedule_lag_p99_ms"].map { $0 >= 199 } == true)
    }

    @Test("the report: JSON schema 1 with snake_case keys round-trips; Markdown and HTML carry the figures")
    func reportFormats() throws {
        let recorder = Recorder()
        recorder.record(
            Outcome(arrival: Arrival(at: 0.1, phase: 0, request: "r"), sentAt: 0.1, doneAt: 0.11, status: 200),
            phase: "p")
        let scenario = try Self.scenario(Self.minimal)
        let report = ReportBuilder(
            scenario: scenario, quick: true, startedAt: Date(), recorder: recorder, policies: [], tasks: TaskFigures(),
            server: ServerMetrics(text: "envoy_cache_requests_total{cache=\"profile\",result=\"hit\"} 3\n"),
            faults: [FaultInjector.Applied(kind: "redis_down", at: 0.5, duration: 1)], loadEnd: 2,
            overloaded: false, maxLag: .milliseconds(50)
        ).build()
        let json = try report.json()
        let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        #expect(object?["schema_version"] as? Int == 1)
        for key in [
            "scenario", "valid", "phases", "totals", "figures", "rate_limits", "faults", "timeline", "expectations",
            "passed",
        ] {
            #expect(object?[key] != nil, "\(key)")
        }
        let phase = (object?["phases"] as? [[String: Any]])?.first?["requests"] as? [String: [String: Any]]
        #expect(phase?["r"]?["p99_ms"] != nil && phase?["r"]?["service_p99_ms"] != nil)
        let decoded = try Report.decode(json)
        #expect(decoded.phases.first?.requests["r"]?.sent == 1 && decoded.figures["db_queries_saved"] == 3)
        #expect(report.markdown().contains("| p | r | 1 |"))
        let html = report.html()
        #expect(html.hasPrefix("<!doctype html>") && html.contains("<svg") && html.contains("redis_down"))
        #expect(!html.contains("<script"))
    }

    @Test("two instances behind the generator's round robin share one Redis: a per-user limit holds in total")
    func twoInstances() async throws {
        let scenario = try Self.scenario(
            """
            {"schema": 1, "name": "two", "stack": {"redis": true, "instances": 2, "workers": 0,
               "env": {"BCRYPT_COST": "4"}},
             "users": {"count": 1},
             "requests": {"r": {"path": "/v1/user/profile"}},
             "phases": [{"name": "p", "duration": 3, "rate": 50, "arrival": "uniform", "mix": {"r": 1}}]}
            """)
        #expect(scenario.stack.instances == 2)
        let report = try await SimTesting.simulator().run(scenario)
        let figures = try #require(report.totals["r"])
        // The default `authenticated` policy: 100 a minute per user, counted across both instances.
        #expect(figures.sent == 150 && figures.ok == 100 && figures.statuses["429"] == 50, "\(figures)")
        #expect(report.stack.instances == 2)
        #expect(
            throws: ScenarioError.self,
            performing: {
                try Self.scenario(
                    Self.minimal.replacingOccurrences(
                        of: #""users": {"count": 1},"#,
                        with: #""stack": {"redis": false, "instances": 2}, "users": {"count": 1},"#))
            })
    }

    @Test("the app talks to Redis directly unless the scenario injects Redis latency or blackholes through the proxy")
    func redisProxyOnlyForItsFaults() async throws {
        let plain = try Self.scenario(
            """
            {"schema": 1, "name": "plain", "stack": {"redis": true, "workers": 0, "env": {"BCRYPT_COST": "4"}},
             "users": {"count": 1}, "requests": {"r": {"path": "/health"}},
             "phases": [{"name": "p", "duration": 1, "rate": 5, "mix": {"r": 1}}]}
            """)
        var slow = plain
        slow.faults = [.init(at: 0, kind: "redis_latency", duration: 1, latencyMs: 5)]
        var killed = plain
        killed.faults = [.init(at: 0, kind: "redis_down", duration: 1)]
        for (scenario, proxied) in [(plain, false), (slow, true), (killed, false)] {
            try await SimTesting.simulator().withStack(scenario) { stack, _ in
                let redis = try #require(stack.redis)
                #expect((stack.redisProxy != nil) == proxied)
                #expect(stack.environment["REDIS_URL"] == "redis://127.0.0.1:\(stack.redisProxy?.port ?? redis.port)")
            }
        }
    }

    @Test("a server stalled (SIGSTOP) for 1 s shows in p99 as wrk2 would show it: latency from the intended send time")
    func stalledServer() async throws {
        let scenario = try Self.scenario(
            """
            {"schema": 1, "name": "stall", "stack": {"redis": false, "workers": 0, "env": {"BCRYPT_COST": "4"}},
             "users": {"count": 10},
             "requests": {"r": {"path": "/v1/user/profile"}},
             "phases": [{"name": "p", "duration": 4, "rate": 50, "arrival": "uniform", "mix": {"r": 1}}],
             "faults": [{"at": 1.5, "kind": "server_stall", "duration": 1}]}
            """)
        let report = try await SimTesting.simulator().run(scenario)
        let figures = try #require(report.totals["r"])
        #expect(figures.sent == 200 && figures.ok == 200)
        // Requests scheduled during the stall waited for it: about a quarter of them, up to a second. (The median
        // stays well under the tail; how far under depends on how fast a loaded machine drains the backlog the
        // stall left, as other suites share this process and its 2 cores.)
        #expect(figures.maxMs >= 900 && figures.p99Ms >= 800, "\(figures)")
        #expect(figures.p50Ms * 2 < figures.p99Ms, "\(figures)")
        #expect(report.faults.first?.kind == "server_stall")
        // (Not `report.valid`: other suites run in this process at the same time and may slow the generator,
        // which the report then rightly calls invalid.)
    }
}
