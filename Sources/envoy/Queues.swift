import ArgumentParser
import EnvoyBackend
import EnvoyFramework
import Foundation

/// `envoy queues`: inspect and repair the task queue.
struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect the task queue: stats, dead letters, re-queue or delete dead tasks.",
        subcommands: [Stats.self, Dead.self, Show.self, RetryDead.self, Delete.self],
        defaultSubcommand: Stats.self)

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ready, delayed, in-flight and dead tasks per queue.")

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() async throws {
            let stats = try await inspectedQueue()?.stats() ?? []
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

        @Option(help: "Only tasks of this type.")
        var type: String?

        @Option(help: "Only tasks one of whose failures contains this (case-insensitive).")
        var error: String?

        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() async throws {
            let filter = DeadFilter(type: type, error: error, limit: limit)
            let dead = try await inspectedQueue()?.deadTasks(matching: filter) ?? []
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

        @Flag(help: "List what would be re-queued, and change nothing.")
        var dryRun = false

        func run() async throws {
            guard let queue = try await inspectedQueue() else { return print("re-queued 0 task(s)") }
            guard dryRun else {
                return print("re-queued \(try await queue.retryDead(ids: ids.isEmpty ? nil : ids)) task(s)")
            }
            let wanted = Set(ids)
            let dead = try await queue.deadTasks(limit: 100_000).filter { wanted.isEmpty || wanted.contains($0.id) }
            for task in dead { print("\(task.id)  \(task.type)  queue=\(task.queue)  \(task.reason)") }
            print("would re-queue \(dead.count) task(s) (dry run: nothing changed)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One task: its state, attempts, failures and payload (secrets and personal data redacted).")

        @Argument(help: "The task's id.")
        var id: String

        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() async throws {
            guard let record = try await inspectedQueue()?.task(id: id) else {
                throw fail("no task \(id): it does not exist, or it completed")
            }
            let task = TaskView(record)
            if json { return try printJSON(task) }
            print("\(task.id)  \(task.type)  queue=\(task.queue)  state=\(task.state)")
            print("attempts \(task.attempts) of \(task.maxAttempts)")
            for failure in task.history { print("    \(failure)") }
            print(task.payload)
        }
    }
}

/// The queue the configuration names, after saying on standard error which store it is (standard output stays
/// the answer, so `--json` is JSON alone); nil when its database does not exist yet (nothing is created).
extension Queues {
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead tasks for good.")

        @Option(name: .customLong("id"), help: "A dead task's id (repeatable).")
        var ids: [String] = []

        @Flag(help: "Delete every dead task.")
        var all = false

        func validate() throws {
            guard all != !ids.isEmpty else { throw ValidationError("name dead tasks with --id, or pass --all") }
        }

        func run() async throws {
            let count = try await inspectedQueue()?.deleteDead(ids: all ? nil : ids) ?? 0
            print("deleted \(count) dead task(s)")
        }
    }
}

private func inspectedQueue() async throws -> (any TaskQueueAdministration)? {
    let (configuration, logger) = try loadConfiguration()
    let found: (queue: any TaskQueueAdministration, store: String)?
    do {
        found = try await Backend.existingQueue(configuration: configuration, logger: logger)
    } catch let error as ConfigurationError {
        throw fail("configuration error: \(error)")
    } catch {
        throw fail("cannot open the queue: \(error)")
    }
    guard let found else {
        FileHandle.standardError.write(Data("queue: sqlite \(configuration.databasePath) (no database yet)\n".utf8))
        return nil
    }
    FileHandle.standardError.write(Data("queue: \(found.store)\n".utf8))
    return found.queue
}

private func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase  // as the admin API writes them
    encoder.dateEncodingStrategy = .secondsSince1970
    let text = String(decoding: try encoder.encode(value), as: UTF8.self)
    // Foundation pretty-prints an empty list as "[", a blank line and "]".
    print(text.filter { !$0.isWhitespace } == "[]" ? "[]" : text)
}
