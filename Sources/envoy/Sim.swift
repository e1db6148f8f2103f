import ArgumentParser
import EnvoySim
import Foundation

/// `envoy sim`: validates scenarios now; replay against the real stack is not in this build yet (exit 3).
struct Sim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay traffic scenarios against the real stack and write reports (replay: not in this build yet).")

    @Argument(help: "Scenario JSON files.")
    var scenarios: [String]

    @Option(help: "Where reports go (SPEC option; no report is written until replay exists).")
    var reportDir = "./sim-reports"

    @Flag(help: "Search for the highest sustainable rate (SPEC option; not built yet, exits 3 like replay).")
    var capacity = false

    func run() async throws {
        for path in scenarios {
            do {
                let scenario = try Scenario.load(path: path)
                print(
                    "\(path): valid scenario \"\(scenario.name)\" (\(scenario.phases.count) phase(s), \(scenario.expectations.count) expectation(s))"
                )
            } catch {
                print("envoy sim: \(path): \(error)")
                throw ExitCode(3)
            }
        }
        print("envoy sim: replaying scenarios is not in this build yet; the scenarios above were only validated")
        throw ExitCode(3)
    }
}
