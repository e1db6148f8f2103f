import AsyncHTTPClient
import Foundation
import NIOCore

/// Samples of `envoy serve`'s `/metrics` (Prometheus text), and differences between two scrapes.
struct ServerMetrics: Sendable {
    /// One sample: the metric's name, its labels, its value.
    struct Sample: Sendable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// Samples keyed by their series (`name{labels}` as printed).
    var samples: [String: Sample] = [:]

    /// Reads `/metrics` now.
    static func scrape(_ baseURL: String, client: HTTPClient) async throws -> ServerMetrics {
        let response = try await client.execute(HTTPClientRequest(url: baseURL + "/metrics"), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 16 << 20)
        return ServerMetrics(text: String(buffer: body))
    }

    /// Reads `/metrics` of every instance now and adds them up, series by series.
    static func scrape(_ baseURLs: [String], client: HTTPClient) async throws -> ServerMetrics {
        var total = ServerMetrics()
        for baseURL in baseURLs {
            for (series, sample) in try await scrape(baseURL, client: client).samples {
                total.samples[series, default: Sample(name: sample.name, labels: sample.labels, value: 0)].value +=
                    sample.value
            }
        }
        return total
    }

    /// Parses the exposition text (comments and malformed lines are skipped).
    init(text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            let series = String(line[..<space])
            var name = series
            var labels: [String: String] = [:]
            if let open = series.firstIndex(of: "{"), series.hasSuffix("}") {
                name = String(series[..<open])
                let inner = series[series.index(after: open)..<series.index(before: series.endIndex)]
                for pair in inner.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { continue }
                    labels[String(parts[0])] = String(parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
                }
            }
            samples[series] = Sample(name: name, labels: labels, value: value)
        }
    }

    private init() {}

    private init(samples: [String: Sample]) {
        self.samples = samples
    }

    /// This scrape minus `earlier`, series by series (counters' growth over the run).
    func delta(from earlier: ServerMetrics) -> ServerMetrics {
        ServerMetrics(
            samples: Dictionary(
                uniqueKeysWithValues: samples.map { series, sample in
                    var sample = sample
                    sample.value -= earlier.samples[series]?.value ?? 0
                    return (series, sample)
                }))
    }

    /// The sum of every series of `name` whose labels include `labels`.
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples.values.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }.reduce(0) { $0 + $1.value }
    }
}
