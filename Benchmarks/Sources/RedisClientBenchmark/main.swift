// Measures the Redis client's throughput on loopback: commands per second, sequential, with many concurrent
// callers multiplexed (pipelined) over a few connections, and with explicit pipelines. Run through
// Benchmarks/redis-client.sh, which puts redis-benchmark's figures for the same concurrency and depth beside these.
import EnvoyFramework
import EnvoyPlugins
import Foundation
import Logging

/// One row: `callers` concurrent tasks on `connections` connections, each call carrying `depth` commands.
struct Load {
    var callers: Int
    var connections: Int
    var depth: Int

    /// "callers:connections[:depth]".
    init?(_ text: Substring) {
        let numbers = text.split(separator: ":").compactMap { Int($0) }
        guard numbers.count >= 2, numbers.allSatisfy({ $0 > 0 }) else { return nil }
        (callers, connections, depth) = (numbers[0], numbers[1], numbers.count > 2 ? numbers[2] : 1)
    }
}

@main
struct RedisClientBenchmark {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else {
            print("usage: RedisClientBenchmark REDIS_URL [requests] [callers:connections[:depth],…]")
            return
        }
        let requests = arguments.count > 2 ? Int(arguments[2]) ?? 200_000 : 200_000
        let loads = (arguments.count > 3 ? arguments[3] : "1:1,50:1,200:4,1:1:50,4:4:50").split(separator: ",")
            .compactMap(Load.init)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        for load in loads {
            let client = try RedisClient(
                configuration: .init(
                    endpoint: try RedisEndpoint(url: arguments[1]), poolSize: load.connections,
                    commandTimeout: .seconds(10)),
                logger: logger)
            _ = try await client.send("PING")
            for command in ["SET", "GET"] {
                let count = load.callers == 1 && load.depth == 1 ? requests / 4 : requests
                let calls = count / load.callers / load.depth
                let start = ContinuousClock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for caller in 0..<load.callers {
                        group.addTask {
                            let key = RedisArgument("bench:\(caller)")
                            let single: [RedisArgument] = command == "SET" ? ["SET", key, "xxx"] : ["GET", key]
                            let batch = [[RedisArgument]](repeating: single, count: load.depth)
                            for _ in 0..<calls {
                                if load.depth == 1 {
                                    try await client.send(single)
                                } else {
                                    _ = try await client.pipeline(batch)
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let rate = Double(calls * load.callers * load.depth) / (ContinuousClock.now - start).inSeconds
                print(
                    "envoy \(command) callers=\(load.callers) connections=\(load.connections) depth=\(load.depth):"
                        + " \(Int(rate)) requests per second")
            }
            client.shutdown()
        }
    }
}
