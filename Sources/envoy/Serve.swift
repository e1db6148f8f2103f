import ArgumentParser
import EnvoyBackend
import Hummingbird
import Logging

/// `envoy serve`: the HTTP API (with an in-process worker while the queue is embedded).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTP API on HOST:PORT (and a worker in-process while the queue is embedded).")

    @Flag(help: "Do not run a worker inside this process (run `envoy worker` separately).")
    var noWorker = false

    @Flag(help: "Run a worker inside this process even when the queue is on Redis.")
    var worker = false

    func run() async throws {
        let (configuration, logger) = try loadConfiguration()
        let backend = try await makeBackend(configuration, logger: logger)
        logger.info("envoy starting", metadata: configuration.summary)
        try await backend.application(inProcessWorker: noWorker ? false : (worker ? true : nil)).runService()
    }
}
