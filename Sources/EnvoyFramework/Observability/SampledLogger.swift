import Foundation
import Logging
import Synchronization

/// A logger that writes at most `perSecond` lines each second and reports how many it held back,
/// so that a flood of events cannot flood the log.
public final class SampledLogger: Sendable {
    private let logger: Logger
    private let perSecond: Int
    private let window = Mutex((second: 0, written: 0, suppressed: 0))

    /// Wraps `logger`, allowing `perSecond` lines a second.
    public init(logger: Logger, perSecond: Int) {
        self.logger = logger
        self.perSecond = perSecond
    }

    /// Logs a warning unless this second's allowance is spent.
    public func warning(_ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata = [:]) {
        let second = Int(Date().timeIntervalSince1970)
        let (write, heldBack) = window.withLock { window -> (Bool, Int) in
            var heldBack = 0
            if window.second != second {
                heldBack = window.suppressed
                window = (second, 0, 0)
            }
            guard window.written < perSecond else {
                window.suppressed += 1
                return (false, 0)
            }
            window.written += 1
            return (true, heldBack)
        }
        guard write else { return }
        var metadata = metadata
        if heldBack > 0 { metadata["suppressed"] = .stringConvertible(heldBack) }
        logger.warning(message(), metadata: metadata)
    }
}
