import ArgumentParser
import EnvoyBackend
import EnvoyFramework
import EnvoyPlugins
import Foundation
import Logging
import ServiceLifecycle

/// The `envoy` command: serve, worker, queues, sim.
@main
struct Envoy: AsyncParsableCommand {
    static let version = Backend.version

    static let configuration = CommandConfiguration(
        commandName: "envoy",
        abstract: "Rate limiting, caching, background tasks and traffic simulation for SaaS APIs.",
        version: "envoy \(version) (hiredis \(SystemLibraries.hiredisVersion), libcurl \(SystemLibraries.curlVersion))",
        subcommands: [Serve.self, Worker.self, Queues.self, Sim.self]
    )
}

/// Reads the environment and `.env`, and sets up logging as `LOG_LEVEL`/`LOG_FORMAT` say.
/// A bad value exits with one line naming the variable.
func loadConfiguration() throws -> (AppConfiguration, Logger) {
    let configuration: AppConfiguration
    do {
        configuration = try AppConfiguration.load()
    } catch {
        throw fail("configuration error: \(error)")
    }
    let level = configuration.logLevel
    let format: LineLogHandler.Format = configuration.logFormat == "json" ? .json : .text
    LoggingSystem.bootstrap { label in
        var handler = LineLogHandler(label: label, format: format)
        handler.logLevel = level
        return handler
    }
    return (configuration, Logger(label: "envoy"))
}

/// Builds the backend, turning start-up failures into one clear line.
func makeBackend(_ configuration: AppConfiguration, logger: Logger) async throws -> Backend {
    do {
        return try await Backend.make(configuration: configuration, logger: logger)
    } catch let error as ConfigurationError {
        throw fail("configuration error: \(error)")
    } catch {
        throw fail("start-up failed: \(error)")
    }
}

/// Prints `envoy: message` as the one line on standard error and returns the exit code to throw.
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("envoy: \(message)\n".utf8))
    return ExitCode.failure
}

extension ServiceGroupConfiguration {
    /// Graceful shutdown with an upper bound whatever clients or tasks do: after `grace` what is left is
    /// cancelled, and a cancellation still hanging 5 s later ends the process.
    func boundingShutdown(grace: Duration) -> Self {
        var copy = self
        copy.maximumGracefulShutdownDuration = grace
        copy.maximumCancellationDuration = .seconds(5)
        return copy
    }
}
