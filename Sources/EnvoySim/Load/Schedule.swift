import Foundation

/// One planned request: when (seconds from the start of the first phase), in which phase, which request.
public struct Arrival: Sendable, Equatable {
    /// Intended send time, seconds from the start.
    public var at: Double
    /// The phase's index.
    public var phase: Int
    /// The request's name.
    public var request: String
}

/// The open-model plan of a run: every request's intended send time, fixed before the first one is sent, so a
/// slow server cannot slow the load down (no coordinated omission).
public enum Schedule {
    /// Arrivals for every phase: uniform or Poisson, at a constant or linearly ramped rate, each picking a
    /// request from the phase's mix by weight. The same seed gives the same plan.
    public static func arrivals(for phases: [Scenario.Phase], seed: UInt64) -> [Arrival] {
        var random = SplitMix64(seed: seed)
        var arrivals: [Arrival] = []
        var start = 0.0
        for (index, phase) in phases.enumerated() {
            let names = phase.mix.keys.sorted()
            let weights = names.map { max(0, phase.mix[$0] ?? 0) }
            let total = weights.reduce(0, +)
            let times =
                phase.arrival == "uniform"
                ? uniform(phase, random: &random) : poisson(phase, random: &random)
            for time in times {
                var pick = Double.random(in: 0..<total, using: &random)
                var chosen = names.last!
                for (name, weight) in zip(names, weights) {
                    if pick < weight {
                        chosen = name
                        break
                    }
                    pick -= weight
                }
                arrivals.append(Arrival(at: start + time, phase: index, request: chosen))
            }
            start += phase.duration
        }
        return arrivals
    }

    /// The rate at `time` into `phase`.
    static func rate(_ phase: Scenario.Phase, at time: Double) -> Double {
        phase.rate + ((phase.rampTo ?? phase.rate) - phase.rate) * time / phase.duration
    }

    /// Evenly spaced in "expected count": the k-th arrival where the integral of the rate reaches k.
    private static func uniform(_ phase: Scenario.Phase, random: inout SplitMix64) -> [Double] {
        let r0 = phase.rate
        let slope = ((phase.rampTo ?? r0) - r0) / phase.duration
        let expected = r0 * phase.duration + slope * phase.duration * phase.duration / 2
        var times: [Double] = []
        var k = 0.0
        while k < expected {
            // Solve r0·t + slope·t²/2 = k for t ≥ 0.
            let t = abs(slope) < 1e-12 ? k / r0 : (-r0 + (r0 * r0 + 2 * slope * k).squareRoot()) / slope
            if t >= phase.duration { break }
            times.append(t)
            k += 1
        }
        return times
    }

    /// A Poisson process of the (possibly ramped) rate, by thinning one of the peak rate.
    private static func poisson(_ phase: Scenario.Phase, random: inout SplitMix64) -> [Double] {
        let peak = max(phase.rate, phase.rampTo ?? phase.rate)
        guard peak > 0 else { return [] }
        var times: [Double] = []
        var t = 0.0
        while true {
            t += -log(1 - Double.random(in: 0..<1, using: &random)) / peak
            if t >= phase.duration { break }
            if Double.random(in: 0..<1, using: &random) * peak <= rate(phase, at: t) { times.append(t) }
        }
        return times
    }
}

/// A small, fast, seedable generator (SplitMix64), so a scenario's plan repeats exactly.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator starting from `seed`.
    public init(seed: UInt64) {
        state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
