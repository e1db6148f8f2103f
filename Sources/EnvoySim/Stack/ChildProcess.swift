import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process (`envoy serve`, `envoy worker`, a test binary), its output captured; killed on deinit.
public final class ChildProcess: Sendable {
    let process: Process
    let output = OutputBuffer()

    /// A product built next to the running executable or test bundle.
    public static func sibling(_ name: String) -> URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
    }

    /// Starts `binary` with `arguments` in `directory`, with `environment` (plus a minimal PATH).
    public init(binary: URL, arguments: [String], directory: URL, environment: [String: String] = [:]) throws {
        process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { output.text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        }
        try process.run()
        ProcessReaper.adopt(process.processIdentifier)
    }

    /// Everything it printed so far.
    public var log: String { output.text.withLock { $0 } }

    /// The port from Hummingbird's "listening on host:port" line.
    public func listeningPort(timeout: Duration = .seconds(30)) async -> Int? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let range = log.range(of: #"listening on 127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                return Int(log[range].split(separator: ":").last!)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Waits for it to exit; its status, or nil if it is still running after `timeout`.
    public func wait(timeout: Duration = .seconds(30)) async -> Int32? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Sends `signal` (SIGKILL, SIGTERM…).
    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// The process id.
    public var pid: Int32 { process.processIdentifier }

    /// Whether it is still running.
    public var isRunning: Bool { process.isRunning }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            kill(process.processIdentifier, SIGKILL)
        }
        ProcessReaper.release(process.processIdentifier)
    }
}

final class OutputBuffer: Sendable {
    let text = Mutex("")
}
