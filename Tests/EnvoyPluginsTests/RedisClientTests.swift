import EnvoyFramework
import Foundation
import Logging
import NIOPosix
import Testing
import EnvoySim
import EnvoyTestSupport

@testable import EnvoyPlugins

let quiet: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()

func client(_ url: String, caFile: String? = nil, poolSize: Int = 2, timeout: Duration = .milliseconds(500)) throws
    -> RedisClient
{
    try RedisClient(
        configuration: .init(
            endpoint: try RedisEndpoint(url: url, caFile: caFile), poolSize: poolSize, commandTimeout: timeout,
            breakerThreshold: 3, breakerCooldown: .milliseconds(200)),
        logger: quiet)
}

@Suite("RESP codec (hiredis)")
struct RESPCodecTests {
    @Test("commands encode as RESP arrays of bulk strings, binary-safe")
    func encoding() {
        #expect(
            String(decoding: RESPEncoder.encode(["SET", "k", RedisArgument(bytes: [0, 13, 10])]), as: UTF8.self)
                == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\0\r\n\r\n")
        #expect(String(decoding: RESPEncoder.encode(["GET", ""]), as: UTF8.self) == "*2\r\n$3\r\nGET\r\n$0\r\n\r\n")
        #expect(RedisArgument(60_000.0).bytes == Array("60000".utf8) && RedisArgument(-3.0).bytes == Array("-3".utf8))
        #expect(RedisArgument(1500.5).bytes == Array("1500.5".utf8) && RedisArgument(1e20).bytes == Array("1e+20".utf8))
    }

    @Test("integers, text and bytes are written as given, each argument whole, however they mix")
    func argumentsAsWritten() {
        for number in [0, 7, -7, 10, -10, 99, 100, 123_456_789, Int.max, Int.min] {
            #expect(RedisArgument(number).bytes == Array(String(number).utf8))
        }
        let long = String(repeating: "é{k}:", count: 40)
        let command: [RedisArgument] = [
            "EVALSHA", RedisArgument(long), -42, RedisArgument(bytes: [0, 255]), RedisArgument(Int.min), "",
        ]
        let expected =
            Array("*6\r\n$7\r\nEVALSHA\r\n$\(long.utf8.count)\r\n\(long)\r\n$3\r\n-42\r\n$2\r\n".utf8) + [0, 255]
            + Array("\r\n$20\r\n\(Int.min)\r\n$0\r\n\r\n".utf8)
        #expect(RESPEncoder.encode(command) == expected)
    }

    @Test("replies decode across arbitrary chunk boundaries")
    func decoding() throws {
        let wire = Array("+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n".utf8)
        for chunk in [1, 2, 3, 7, wire.count] {
            let reader = RESPReader(maxReplyBytes: 1 << 20)
            var values: [RESPValue] = []
            var offset = 0
            while offset < wire.count {
                let end = min(wire.count, offset + chunk)
                try wire[offset..<end].withUnsafeBytes { try reader.feed($0) }
                while let value = try reader.next() { values.append(value) }
                offset = end
            }
            #expect(
                values == [
                    .simple("OK"), .error("ERR bad"), .integer(42), .bulk(Array("hello".utf8)), .bulk(nil),
                    .array([.bulk([97]), .integer(1)]),
                ])
        }
    }

    @Test("garbage, deep nesting and oversized replies are errors, never crashes")
    func malformed() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let reader = RESPReader(maxReplyBytes: 4096)
            let bytes = (0..<Int.random(in: 1...64, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            do {
                try bytes.withUnsafeBytes { try reader.feed($0) }
                while try reader.next() != nil {}
            } catch {
                #expect("\(error)".contains("protocol"))
            }
        }
        let deep = RESPReader(maxReplyBytes: 4096)
        #expect(throws: RedisError.self) {
            try Array(String(repeating: "*1\r\n", count: 20).utf8).withUnsafeBytes { try deep.feed($0) }
            _ = try deep.next()
        }
        let big = RESPReader(maxReplyBytes: 1024)
        #expect(throws: RedisError.self) {
            try Array(("$100000\r\n" + String(repeating: "x", count: 2000)).utf8).withUnsafeBytes { try big.feed($0) }
        }
        let badType = RESPReader(maxReplyBytes: 1024)
        #expect(throws: RedisError.self) {
            try Array("?what\r\n".utf8).withUnsafeBytes { try badType.feed($0) }
            _ = try badType.next()
        }
    }

    @Test("REDIS_URL forms parse; bad ones are refused without echoing a password")
    func endpoints() throws {
        let tls = try RedisEndpoint(url: "rediss://default:p%40ss@eu1.upstash.io:6380/2")
        #expect(tls.address == .tcp(host: "eu1.upstash.io", port: 6380))
        #expect(tls.tls && tls.database == 2 && tls.username == "default" && tls.password == "p@ss")
        #expect(!tls.description.contains("p@ss"))
        #expect(try RedisEndpoint(url: "redis://localhost").address == .tcp(host: "localhost", port: 6379))
        #expect(try RedisEndpoint(url: "unix:///run/redis.sock?db=3").address == .unix(path: "/run/redis.sock"))
        for bad in ["http://:hunter2@x", "redis://:hunter2@/", "redis://:hunter2@h/db", "unix://relative"] {
            do {
                _ = try RedisEndpoint(url: bad)
                Issue.record("accepted \(bad)")
            } catch {
                #expect(!error.description.contains("hunter2"))
            }
        }
    }
}

@Suite("RedisClient against a real redis-server")
struct RedisClientTests {
    @Test("one connection carries 2,000 concurrent callers; every reply reaches its own caller")
    func pipelining() async throws {
        let server = try RedisServer()
        let redis = try client(server.url, poolSize: 1, timeout: .seconds(5))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<2000 {
                group.addTask {
                    try await redis.send("SET", RedisArgument("k\(index)"), RedisArgument("v\(index)"))
                    let value = try await redis.send("GET", RedisArgument("k\(index)")).string
                    #expect(value == "v\(index)")
                    try await redis.send("INCR", "counter")
                }
            }
            try await group.waitForAll()
        }
        #expect(try await redis.send("GET", "counter").int == 2000)
        await #expect(throws: RedisError.self) { try await redis.send("NOSUCHCOMMAND") }
        redis.shutdown()
    }

    @Test("a caller on an event loop uses the pooled connection living on that loop")
    func eventLoopAffinity() async throws {
        let server = try RedisServer()
        let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
        let redis = try client(server.url, poolSize: loops.count, timeout: .seconds(5))
        var idsByLoop: [Set<Int64>] = []
        for loop in loops {
            let ids = try await withTaskExecutorPreference(EventLoopTaskExecutor.on(loop)) {
                var ids = Set<Int64>()
                for _ in 0..<6 { ids.insert(try await redis.send("CLIENT", "ID").int ?? -1) }
                return ids
            }
            idsByLoop.append(ids)
        }
        // One connection per loop (round robin would give each loop every connection), a different one per loop.
        #expect(idsByLoop.allSatisfy { $0.count == 1 })
        #expect(Set(idsByLoop.flatMap { $0 }).count == loops.count)
        redis.shutdown()
    }

    @Test("pipelines and single calls interleave on one connection; each caller gets its replies in order")
    func explicitPipelines() async throws {
        let server = try RedisServer()
        let redis = try client(server.url, poolSize: 1, timeout: .seconds(5))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<300 {
                group.addTask {
                    let key = RedisArgument("p\(index)")
                    let replies = try await redis.pipeline([
                        ["SET", key, RedisArgument("v\(index)")], ["GET", key], ["NOSUCHCOMMAND"],
                        ["INCRBY", "total", RedisArgument(index)], ["LRANGE", "missing", 0, -1],
                    ])
                    #expect(replies.count == 5)
                    #expect(replies[0].string == "OK")
                    #expect(replies[1].string == "v\(index)")
                    if case .error(let message) = replies[2] {
                        #expect(message.contains("unknown command"))
                    } else {
                        Issue.record("expected an error reply in place, got \(replies[2])")
                    }
                    #expect(replies[3].int != nil)
                    #expect(replies[4] == .array([]))
                    #expect(try await redis.send("GET", key).string == "v\(index)")
                }
            }
            try await group.waitForAll()
        }
        #expect(try await redis.send("GET", "total").int == Int64((0..<300).reduce(0, +)))
        #expect(try await redis.pipeline([]) == [])
        // One command: its reply, even when that reply is itself an array.
        #expect(try await redis.pipeline([["GET", "p1"]]) == [.bulk(Array("v1".utf8))])
        #expect(try await redis.pipeline([["LRANGE", "missing", 0, -1]]) == [.array([])])
        redis.shutdown()
    }

    @Test(
        "a pipeline whose replies do not come in time fails at its deadline, after the connection was idle too; late replies do not shift later calls",
        .timeLimit(.minutes(1)))
    func pipelineDeadline() async throws {
        let server = try RedisServer()
        let redis = try client(server.url, poolSize: 1, timeout: .milliseconds(200))
        try await redis.send("SET", "k", "v")
        // Idle long enough for the connection to stop sweeping for deadlines: the next write must start it again.
        try await Task.sleep(for: .milliseconds(100))
        server.pause(true)
        let start = ContinuousClock.now
        await #expect(throws: RedisError.timeout(.milliseconds(200))) {
            try await redis.pipeline([["GET", "k"], ["INCR", "n"], ["GET", "k"]])
        }
        #expect(ContinuousClock.now - start < .seconds(2))
        server.pause(false)
        // The stalled pipeline's three replies arrive now and are dropped; the next calls get their own.
        let replies = try await redis.pipeline([["INCR", "n"], ["GET", "k"]])
        #expect(replies == [.integer(2), .bulk(Array("v".utf8))])
        #expect(try await redis.send("GET", "n").int == 2)
        redis.shutdown()
    }

    @Test("TLS with a CA generated now: trusted with REDIS_TLS_CA_FILE, refused without it")
    func tls() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificates = try RedisServer.makeCertificates(in: directory)
        let port = try RedisServer.freePort()
        let server = try RedisServer(
            [
                "--tls-port", String(port), "--tls-cert-file", certificates.cert, "--tls-key-file", certificates.key,
                "--tls-ca-cert-file", certificates.ca, "--tls-auth-clients", "no",
            ],
            port: port, plainPort: false)
        let trusted = try client("rediss://localhost:\(server.port)", caFile: certificates.ca, timeout: .seconds(3))
        #expect(try await trusted.send("PING").string == "PONG")
        #expect(try await trusted.serverVersion().hasPrefix("7"))
        trusted.shutdown()
        let untrusted = try client("rediss://localhost:\(server.port)", timeout: .seconds(3))
        await #expect(throws: RedisError.self) { try await untrusted.send("PING") }
        untrusted.shutdown()
    }

    @Test("Unix socket, password AUTH, ACL user, SELECT; a wrong password is a clear error without the password")
    func unixAndAuth() async throws {
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent(
            "r-\(UUID().uuidString.prefix(8)).sock"
        ).path
        let server = try RedisServer(["--unixsocket", socket, "--requirepass", "s3cret-pass"])
        let overSocket = try client("unix://\(socket)?password=s3cret-pass&db=4")
        try await overSocket.send("SET", "where", "db4")
        let overTCP = try client("redis://:s3cret-pass@127.0.0.1:\(server.port)/4")
        #expect(try await overTCP.send("GET", "where").string == "db4")
        try await overTCP.send("ACL", "SETUSER", "alice", "on", ">alice-pass", "~*", "+@all")
        let alice = try client("redis://alice:alice-pass@127.0.0.1:\(server.port)/4")
        #expect(try await alice.send("GET", "where").string == "db4")
        let wrong = try client("redis://:wrong-pass@127.0.0.1:\(server.port)")
        do {
            try await wrong.send("PING")
            Issue.record("a wrong password was accepted")
        } catch {
            #expect(error.description.contains("authentication failed"))
            #expect(!error.description.contains("wrong-pass"))
        }
        for redis in [overSocket, overTCP, alice, wrong] { redis.shutdown() }
    }

    @Test(
        "server killed mid-traffic: calls fail within the deadline, the breaker opens, the client recovers after restart"
    )
    func killAndRestart() async throws {
        let server = try RedisServer()
        let redis = try client(server.url, timeout: .milliseconds(300))
        try await redis.send("SET", "k", "before")
        server.kill()
        var failures = 0
        let start = ContinuousClock.now
        for _ in 0..<20 {
            let callStart = ContinuousClock.now
            do { try await redis.send("GET", "k") } catch { failures += 1 }
            #expect(ContinuousClock.now - callStart < .milliseconds(1500))
        }
        #expect(failures == 20)
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(redis.breakerState != .closed)
        await #expect(throws: RedisError.circuitOpen) { try await redis.send("GET", "k") }
        try server.restart()
        let recovered = await eventually(timeout: .seconds(5)) { (try? await redis.send("PING").string) == "PONG" }
        #expect(recovered)
        #expect(redis.breakerState == .closed)
        redis.shutdown()
    }

    @Test("scripts run by EVALSHA and reload after SCRIPT FLUSH")
    func scripts() async throws {
        let server = try RedisServer()
        let redis = try client(server.url)
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await redis.run(script, keys: ["n"], arguments: [5]).int == 5)
        try await redis.send("SCRIPT", "FLUSH")
        #expect(try await redis.run(script, keys: ["n"], arguments: [5]).int == 10)
        #expect(try await redis.send("SCRIPT", "EXISTS", RedisArgument(script.sha1)).array == [.integer(1)])
        let broken = RedisScript("return redis.call('NOPE')")
        await #expect(throws: RedisError.self) { try await redis.run(broken, keys: [], arguments: []) }
        redis.shutdown()
    }

    @Test("a reply larger than the limit drops the connection with an error; the next call reconnects")
    func oversizedReply() async throws {
        let server = try RedisServer()
        let redis = try RedisClient(
            configuration: .init(endpoint: try RedisEndpoint(url: server.url), poolSize: 1, maxReplyBytes: 10_000),
            logger: quiet)
        try await redis.send("SET", "big", RedisArgument(String(repeating: "x", count: 50_000)))
        await #expect(throws: RedisError.self) { try await redis.send("GET", "big") }
        #expect(try await redis.send("PING").string == "PONG")
        redis.shutdown()
    }
}
