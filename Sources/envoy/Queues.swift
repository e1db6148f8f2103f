import ArgumentParser
import EnvoyBackend
import EnvoyFramework
import Foundation

/// `envoy queues`: inspect and repair the task queue.
struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect the task queue: stats, dead letters, re-queue dead tasks.",
        subcommands: [Stats.self, Dead.self, RetryDead.self],
        defaultSubcommand: Stats.self)

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ready, delayed, in-flight and dead tasks per queue.")

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() async throws {
            let backend = try await queueBackend()
            let stats = try await backend.taskQueue.stats()
            if json { return try printJSON(stats) }
            print(
                "queue".padding(toLength: 16, withPad: " ", startingAt: 0)
                    + "ready  delayed  in_flight  dead  oldest_ready_s")
            for queue in stats {
                print(
                    queue.queue.padding(toLength: 16, withPad: " ", startingAt: 0)
                        + [queue.ready, queue.delayed, queue.inFlight, queue.dead].map { String($0) }
                        .enumerated().map { $1.padding(toLength: [7, 9, 11, 6][$0], withPad: " ", startingAt: 0) }
                        .joined()
                        + String(format: "%.1f", queue.oldestReadyAge))
            }
            if stats.isEmpty { print("(no tasks)") }
        }
    }

    struct Dead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead-lettered tasks with their failures.")

        @Option(help: "How many to list.")
        var limit = 50

        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() async throws {
            let backend = try await queueBackend()
            let dead = try await backend.taskQueue.deadTasks(limit: limit)
            if json { return try printJSON(dead) }
            for task in dead {
                print("\(task.id)  \(task.type)  queue=\(task.queue)  attempts=\(task.attempts)")
                for failure in task.history { print("    \(failure)") }
            }
            if dead.isEmpty { print("(no dead tasks)") }
        }
    }

    struct RetryDead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry-dead", abstract: "Put dead tasks back in their queues with fresh attempts.")

        @Option(name: .customLong("id"), help: "A dead task's id (repeatable); default: every dead task.")
        var ids: [String] = []

        func run() async throws {
            let backend = try await queueBackend()
            let count = try await backend.taskQueue.retryDead(ids: ids.isEmpty ? nil : ids)
            print("re-queued \(count) task(s)")
        }
    }
}

private func queueBackend() async throws -> Backend {
    let (configuration, logger) = try loadConfiguration()
    return try await makeBackend(configuration, logger: logger)
}

private func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
