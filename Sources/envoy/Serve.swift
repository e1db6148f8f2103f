import ArgumentParser
import EnvoyBackend
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals

/// `envoy serve`: the HTTP API (with an in-process worker while the queue is embedded).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTP API on HOST:PORT (and a worker in-process while the queue is embedded).")

    @Flag(help: "Do not run a worker inside this process (run `envoy worker` separately).")
    var noWorker = false

    @Flag(help: "Run a worker inside this process even when the queue is on Redis.")
    var worker = false

    @Option(help: "Seconds to finish requests in progress after SIGTERM before the rest are cut off.")
    var shutdownGraceSeconds = 30

    func validate() throws {
        guard shutdownGraceSeconds >= 1 else { throw ValidationError("--shutdown-grace-seconds must be at least 1") }
    }

    func run() async throws {
        let (configuration, logger) = try loadConfiguration()
        let tracing = try Backend.startTracing(configuration, serviceName: "envoy-serve", logger: logger)
        let backend = try await makeBackend(configuration, logger: logger)
        logger.info("envoy starting", metadata: backend.summary)
        let application = backend.application(inProcessWorker: noWorker ? false : (worker ? true : nil))
        let group = ServiceGroupConfiguration(
            services: (tracing.map { [$0] } ?? []) + [application], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        try await ServiceGroup(configuration: group.boundingShutdown(grace: .seconds(shutdownGraceSeconds))).run()
    }
}
