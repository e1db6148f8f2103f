// swift-tools-version:6.1
// Micro-benchmarks of Envoy's hot paths (ordo-one/benchmark), kept in a package of their own so the benchmark
// library and its malloc interposer never enter the server's build. Run from this directory:
//   swift package benchmark                       — run and print
//   swift package benchmark thresholds check      — compare with the committed thresholds (exit 2 on regression)
import Foundation
import PackageDescription

// The server package is two directories up; a path dependency's identity is its directory's name, which
// differs between clones, so it is read from the path instead of written down.
let envoyRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let envoy = envoyRoot.lastPathComponent.lowercased()

let package = Package(
    name: "EnvoyMicroBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: envoyRoot.path),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "HotPaths",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "EnvoyFramework", package: envoy),
                .product(name: "EnvoyPlugins", package: envoy),
                .product(name: "EnvoyBackend", package: envoy),
            ],
            path: "Benchmarks/HotPaths",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
