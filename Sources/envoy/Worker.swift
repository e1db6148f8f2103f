import ArgumentParser
import EnvoyBackend
import EnvoyFramework
import Foundation
import ServiceLifecycle
import UnixSignals

/// `envoy worker`: runs background tasks until SIGTERM/SIGINT, then finishes or hands back what it holds.
struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run background tasks from the queue.")

    @Option(help: "Tasks run at once.")
    var concurrency = 4

    @Option(help: "Comma-separated queues to take tasks from (default: all).")
    var queues: String?

    @Option(help: "Seconds a running task's lease lasts before another worker may take it (renewed while running).")
    var leaseSeconds = 30

    @Option(help: "Seconds to let running tasks finish after SIGTERM before handing them back.")
    var shutdownGraceSeconds = 30

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard leaseSeconds >= 2 else { throw ValidationError("--lease-seconds must be at least 2") }
    }

    func run() async throws {
        let (configuration, logger) = try loadConfiguration()
        let tracing = try Backend.startTracing(configuration, serviceName: "envoy-worker", logger: logger)
        let backend = try await makeBackend(configuration, logger: logger)
        let worker = backend.worker(
            .init(
                concurrency: concurrency,
                queues: queues?.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } ?? [],
                lease: .seconds(leaseSeconds)))
        // Its own /health and /metrics (stopped after the worker: the group stops services in reverse order).
        var http: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if configuration.workerMetricsPort > 0 {
            http.append(.init(service: backend.workerApplication(worker, port: configuration.workerMetricsPort)))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: ((tracing.map { [$0] } ?? []) + backend.connections).map {
                    ServiceGroupConfiguration.ServiceConfiguration(service: $0)
                } + http + [.init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                cancellationSignals: [],
                logger: logger
            ).boundingShutdown(grace: .seconds(shutdownGraceSeconds)))
        try await group.run()
    }
}
