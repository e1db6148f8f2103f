import ArgumentParser
import EnvoySim
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `envoy sim`: replays scenarios against the real stack and writes reports.
/// Exit: 0 every expectation held, 1 one failed, 2 a run was invalid (the generator fell behind), 3 the tool failed.
struct Sim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay traffic scenarios against the real stack (redis-server, envoy serve, envoy worker, mock "
            + "Mailgun and Paddle) and write reports.",
        discussion: "Exit status: 0 all expectations held, 1 an expectation failed, 2 a run was invalid (the load "
            + "generator could not keep its schedule), 3 the tool failed.")

    @Argument(help: "Scenario JSON files.")
    var scenarios: [String]

    @Option(help: "Where reports go: DIR/NAME/report.json, report.md, report.html.")
    var reportDir = "./sim-reports"

    @Flag(help: "Shorter runs (each scenario's `quick` settings), as CI replays them.")
    var quick = false

    @Flag(help: "Only validate the scenario files.")
    var validate = false

    @Flag(help: "Keep each run's directory (database, logs) in the temporary directory.")
    var keep = false

    @Flag(help: "Search for the highest rate meeting each scenario's `capacity` objective, and plan for its target.")
    var capacity = false

    func run() async throws {
        ProcessReaper.installSignalHandlers(exitStatus: 3)
        var loaded: [(String, Scenario)] = []
        for path in scenarios {
            do {
                loaded.append((path, try Scenario.load(path: path)))
            } catch {
                printError("\(path): \(error)")
                throw ExitCode(3)
            }
        }
        if validate {
            for (path, scenario) in loaded { print("\(path): valid scenario \"\(scenario.name)\"") }
            return
        }
        let environment = ProcessInfo.processInfo.environment
        // EMAIL_TEMPLATES_DIR, when set, replaces the templates built into envoy for the stack too.
        let templates = environment["EMAIL_TEMPLATES_DIR"].map { URL(fileURLWithPath: $0).standardized.path }
        if let templates, !FileManager.default.fileExists(atPath: templates) {
            printError("EMAIL_TEMPLATES_DIR: no email templates directory at \(templates)")
            throw ExitCode(3)
        }
        let simulator = Simulator(
            options: .init(
                envoy: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
                templates: templates, quick: quick,
                progress: isatty(STDERR_FILENO) == 1, keepDirectory: keep))
        if capacity {
            try await searchCapacity(loaded, simulator: simulator)
            return
        }
        var status: Int32 = 0
        for (path, scenario) in loaded {
            let report = try await each(path) { try await simulator.run(scenario) }
            let directory = try write(
                [
                    "report.json": try report.json(), "report.md": Data(report.markdown().utf8),
                    "report.html": Data(report.html().utf8),
                ], for: scenario)
            print(report.terminalSummary())
            print("  report: \(directory.path)/report.{json,md,html}")
            status = max(status, !report.valid ? 2 : report.passed ? 0 : 1)
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// `--capacity`: one search per scenario; exit 1 when a scenario meets its objective at no rate tried.
    private func searchCapacity(_ loaded: [(String, Scenario)], simulator: Simulator) async throws {
        var status: Int32 = 0
        for (path, scenario) in loaded {
            let report = try await each(path) { try await simulator.capacity(scenario) }
            let directory = try write(
                ["capacity.json": try report.json(), "capacity.md": Data(report.markdown().utf8)], for: scenario)
            print(report.markdown())
            print("report: \(directory.path)/capacity.{json,md}")
            if report.sustainableRps == nil { status = 1 }
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// Runs one scenario's work; a failure of the tool itself is one line and exit 3.
    private func each<T>(_ path: String, _ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch {
            printError("\(path): \(error)")
            throw ExitCode(3)
        }
    }

    /// Writes `files` into `--report-dir`/NAME/; a failure is one line and exit 3.
    private func write(_ files: [String: Data], for scenario: Scenario) throws -> URL {
        let directory = URL(fileURLWithPath: reportDir).appendingPathComponent(scenario.name)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for (name, data) in files { try data.write(to: directory.appendingPathComponent(name)) }
        } catch {
            printError("cannot write the report to \(directory.path): \(error)")
            throw ExitCode(3)
        }
        return directory
    }

    private func printError(_ message: String) {
        FileHandle.standardError.write(Data("envoy sim: \(message)\n".utf8))
    }
}
