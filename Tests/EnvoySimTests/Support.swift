import EnvoySim
import Foundation

/// What the simulator's tests share: the repository's root, and a simulator running the `envoy` binary built
/// next to them.
enum SimTesting {
    /// The repository's root directory.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A simulator of the built `envoy`, with the repository's email templates.
    static func simulator(maxScheduleLag: Duration = .milliseconds(50)) -> Simulator {
        Simulator(
            options: .init(
                envoy: ChildProcess.sibling("envoy"), templates: root.appendingPathComponent("templates/email").path,
                maxScheduleLag: maxScheduleLag))
    }
}
