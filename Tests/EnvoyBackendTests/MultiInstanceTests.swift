import AsyncHTTPClient
import EnvoySim
import EnvoyTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// Two `envoy serve` and two `envoy worker` processes sharing one Redis (a redis-server, or a Redis Cluster) and one
/// database file, as behind a load balancer.
@Suite("Several instances on one Redis or one Redis Cluster: limits, caches and tasks stay exact across them")
struct MultiInstanceTests {
    let directory: URL
    let policies: URL

    /// The Redis the instances share.
    enum SharedRedis: String, CaseIterable, CustomTestStringConvertible {
        case server = "one redis-server"
        case cluster = "a Redis Cluster of 3 masters with a replica each"
        var testDescription: String { rawValue }
    }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("envoy-multi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        policies = directory.appendingPathComponent("limits.json")
        try Data(
            #"[{"name":"profile","limit":60,"window":60,"key":"user","match":{"route":"/v1/user/profile"}}]"#.utf8
        ).write(to: policies)
    }

    func environment(redisURL: String) throws -> [String: String] {
        [
            "PORT": "0", "REDIS_URL": redisURL, "DATABASE_URL": try TestStack.databaseURL(in: directory),
            "JWT_SECRET": "a-shared-secret-of-at-least-thirty-two-bytes", "BCRYPT_COST": "4",
            "RATE_LIMITS_FILE": policies.path, "MAIL_OUTBOX_DIR": directory.appendingPathComponent("outbox").path,
            "EMAIL_TEMPLATES_DIR": TestStack.repositoryRoot.appendingPathComponent("templates/email").path,
        ]
    }

    func start(_ arguments: [String], _ environment: [String: String]) throws -> ChildProcess {
        try ChildProcess(
            binary: ChildProcess.sibling("envoy"), arguments: arguments, directory: directory,
            environment: environment)
    }

    /// Delivered emails: recipient of each file in the outbox.
    func delivered() -> [String] {
        let outbox = directory.appendingPathComponent("outbox")
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: outbox.path)) ?? []).filter {
            $0.hasSuffix(".eml")
        }
        return files.compactMap { name in
            let text = (try? String(contentsOf: outbox.appendingPathComponent(name), encoding: .utf8)) ?? ""
            return text.split(separator: "\r\n").first { $0.hasPrefix("To: ") }.map { String($0.dropFirst(4)) }
        }
    }

    @Test(
        "limits exact in total across instances, no stale read after a write elsewhere, every task once; envoy queues",
        arguments: SharedRedis.allCases)
    func twoServersTwoWorkers(_ shared: SharedRedis) async throws {
        let server = shared == .server ? try RedisServer() : nil
        let cluster = shared == .cluster ? try await RedisCluster() : nil
        let environment = try environment(redisURL: cluster?.firstNodeURL ?? server?.url ?? "")
        func start(_ arguments: [String]) throws -> ChildProcess { try self.start(arguments, environment) }
        let a = try start(["serve", "--no-worker"])
        let b = try start(["serve", "--no-worker"])
        let portA = try #require(await a.listeningPort(), "A did not start: \(a.log)")
        let portB = try #require(await b.listeningPort(), "B did not start: \(b.log)")
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = http.shutdown() }
        func call(_ port: Int, _ method: HTTPMethod, _ path: String, token: String? = nil, body: String? = nil)
            async throws -> (status: Int, json: [String: Any])
        {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
            request.method = method
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            if let body { request.body = .bytes(ByteBuffer(string: body)) }
            let response = try await http.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 1 << 20)
            let json = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
            return (Int(response.status.code), json)
        }

        // 40 sign-ups, alternating instances: 40 welcome emails queued, workers not started yet.
        let users = (0..<40).map { "user\($0)@example.com" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, email) in users.enumerated() {
                group.addTask {
                    let body = #"{"email":"\#(email)","password":"correct horse","name":"User \#(index)"}"#
                    let status = try await call(
                        index.isMultiple(of: 2) ? portA : portB, .POST, "/v1/auth/register",
                        body: body
                    ).status
                    #expect(status == 201)
                }
            }
            try await group.waitForAll()
        }

        // Workers: one is killed with SIGKILL while it works, another takes its place; every email arrives once
        // (a task the killed worker held runs again under its lease rules, and re-sends under the same Message-ID,
        // which the outbox keeps as one file).
        let first = try start(["worker", "--concurrency", "4", "--lease-seconds", "3"])
        let second = try start(["worker", "--concurrency", "4", "--lease-seconds", "3"])
        _ = await eventually(timeout: .seconds(20)) { !delivered().isEmpty }
        first.signal(SIGKILL)
        #expect(await first.wait() == SIGKILL)
        let replacement = try start(["worker", "--concurrency", "4", "--lease-seconds", "3"])
        let all = await eventually(timeout: .seconds(60)) { delivered().count >= users.count }
        #expect(all, "delivered \(delivered().count) of \(users.count)")
        try await Task.sleep(for: .seconds(1))  // anything delivered twice would show by now
        #expect(delivered().sorted() == users.sorted())

        // A write through A is seen through B at once: B's cached profile is never served after it.
        let login = try await call(
            portA, .POST, "/v1/auth/login",
            body: #"{"email":"user1@example.com","password":"correct horse"}"#)
        let token = try #require(login.json["access_token"] as? String)
        #expect(try await call(portB, .GET, "/v1/user/profile", token: token).json["name"] as? String == "User 1")
        #expect(try await call(portB, .GET, "/v1/user/profile", token: token).json["name"] as? String == "User 1")
        let put = try await call(portA, .PUT, "/v1/user/profile", token: token, body: #"{"name":"Renamed"}"#)
        #expect(put.status == 200)
        #expect(try await call(portB, .GET, "/v1/user/profile", token: token).json["name"] as? String == "Renamed")

        // The per-user limit on the route (60 a minute; three GETs and the PUT above used 4) holds in total:
        // 200 concurrent requests spread over both instances → exactly 56 admitted.
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<200 {
                group.addTask {
                    try await call(
                        index.isMultiple(of: 2) ? portA : portB, .GET, "/v1/user/profile",
                        token: token
                    ).status
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.filter { $0 == 200 }.count == 56)
        #expect(statuses.filter { $0 == 429 }.count == 144)

        // `envoy queues` reads the same queue: the email queue, empty, nothing dead.
        let stats = try start(["queues", "stats", "--json"])
        #expect(await stats.wait() == 0, "\(stats.log)")
        // Standard error (the store's name, a log line) shares the log: the JSON is the lines from "[" to "]".
        let lines = stats.log.split(separator: "\n", omittingEmptySubsequences: false)
        let open = try #require(lines.firstIndex { $0 == "[" || $0 == "[]" }, "\(stats.log)")
        let close = try #require(lines.lastIndex { $0 == "]" || $0 == "[]" }, "\(stats.log)")
        let json = lines[open...close].joined(separator: "\n")
        let queues = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
        let emailQueue = queues?.first { $0["queue"] as? String == "email" }
        #expect(emailQueue?["ready"] as? Int == 0 && emailQueue?["dead"] as? Int == 0, "\(stats.log)")
        let dead = try start(["queues", "dead"])
        #expect(await dead.wait() == 0 && dead.log.contains("(no dead tasks)"), "\(dead.log)")

        for process in [a, b, second, replacement] { process.signal(SIGTERM) }
        for process in [a, b, second, replacement] { #expect(await process.wait() == 0, "\(process.log)") }
    }
}
