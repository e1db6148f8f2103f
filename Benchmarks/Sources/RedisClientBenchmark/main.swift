// Measures the Redis client's throughput on loopback: commands per second, sequential and with many
// concurrent callers multiplexed (pipelined) over a few connections. Run through Benchmarks/redis-client.sh,
// which puts redis-benchmark's figures for the same concurrency and pipeline depth beside these.
import EnvoyFramework
import EnvoyPlugins
import Foundation
import Logging

@main
struct RedisClientBenchmark {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else {
            print("usage: RedisClientBenchmark REDIS_URL [requests]")
            return
        }
        let requests = arguments.count > 2 ? Int(arguments[2]) ?? 200_000 : 200_000
        // "callers:connections" pairs; default: sequential, 50 callers on one connection, 200 on four.
        let configurations: [(Int, Int)] = (arguments.count > 3 ? arguments[3] : "1:1,50:1,200:4").split(separator: ",")
            .map {
                let pair = $0.split(separator: ":").compactMap { Int($0) }
                return (pair[0], pair[1])
            }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        for (callers, connections) in configurations {
            let client = try RedisClient(
                configuration: .init(
                    endpoint: try RedisEndpoint(url: arguments[1]), poolSize: connections, commandTimeout: .seconds(10)),
                logger: logger)
            _ = try await client.send("PING")
            for command in ["SET", "GET"] {
                let count = callers == 1 ? requests / 4 : requests
                let start = ContinuousClock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for caller in 0..<callers {
                        group.addTask {
                            let share = count / callers
                            let key = RedisArgument("bench:\(caller)")
                            for _ in 0..<share {
                                if command == "SET" {
                                    try await client.send("SET", key, "xxx")
                                } else {
                                    try await client.send("GET", key)
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let seconds = (ContinuousClock.now - start).inSeconds
                let rate = Double(count / callers * callers) / seconds
                print(
                    "envoy \(command) callers=\(callers) connections=\(connections): \(Int(rate)) requests per second")
            }
            client.shutdown()
        }
    }
}
