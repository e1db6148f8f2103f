import Foundation

/// Gunther's Universal Scalability Law fitted to sustainable throughput at several instance counts:
/// X(N) = λN / (1 + σ(N − 1) + κN(N − 1)), with σ the contention (serialised share) and κ the coherency
/// (crosstalk) cost. Fitted by least squares on the linearised form N·λ/X(N) − 1 = σ(N − 1) + κN(N − 1).
public struct Scalability: Codable, Sendable, Equatable {
    /// One measurement: instances and the sustainable requests per second they reached together.
    public struct Point: Codable, Sendable, Equatable {
        /// `envoy serve` instances.
        public var instances: Int
        /// Sustainable requests per second of all of them.
        public var rps: Double
    }

    /// The measurements the fit is made from.
    public var points: [Point]
    /// Throughput of one instance (from the smallest count measured, per instance).
    public var lambda: Double
    /// Contention.
    public var sigma: Double
    /// Coherency.
    public var kappa: Double

    /// Fits the law to `points` (at least two distinct instance counts, all with a positive rate); nil otherwise.
    public init?(points: [Point]) {
        let points = points.filter { $0.rps > 0 && $0.instances >= 1 }.sorted { $0.instances < $1.instances }
        guard let first = points.first, Set(points.map(\.instances)).count >= 2 else { return nil }
        self.points = points
        lambda = first.rps / Double(first.instances)
        // Regress y = N·λ/X(N) − 1 on a = N − 1 and b = N(N − 1), no intercept.
        var (aa, ab, bb, ay, by) = (0.0, 0.0, 0.0, 0.0, 0.0)
        for point in points where point.instances > 1 {
            let n = Double(point.instances)
            let (a, b, y) = (n - 1, n * (n - 1), n * lambda / point.rps - 1)
            (aa, ab, bb, ay, by) = (aa + a * a, ab + a * b, bb + b * b, ay + a * y, by + b * y)
        }
        let determinant = aa * bb - ab * ab
        var (sigma, kappa) =
            abs(determinant) > 1e-12 * max(aa * bb, 1)
            ? ((ay * bb - by * ab) / determinant, (aa * by - ab * ay) / determinant)
            : (ay / aa, 0)
        // Negative costs mean better than linear (noise, or caches warming): clamp, refitting the other alone.
        if kappa < 0 { (sigma, kappa) = (ay / aa, 0) }
        if sigma < 0 { (sigma, kappa) = (0, bb > 0 ? max(0, by / bb) : 0) }
        self.sigma = sigma
        self.kappa = kappa
    }

    /// Predicted requests per second of `instances` instances.
    public func throughput(_ instances: Int) -> Double {
        let n = Double(instances)
        return lambda * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
    }

    /// The instance count where throughput peaks (more instances make it worse), if the coherency cost is not 0.
    public var peakInstances: Int? {
        guard kappa > 0 else { return nil }
        return max(1, Int(((1 - sigma) / kappa).squareRoot().rounded()))
    }

    /// The fewest instances predicted to sustain `target`, or nil if no count up to `limit` does.
    public func instances(for target: Double, limit: Int = 10_000) -> Int? {
        let ceiling = peakInstances.map { min($0, limit) } ?? limit
        return (1...max(1, ceiling)).first { throughput($0) >= target }
    }
}
