import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Every process the simulator started, so that they all die with it: on normal exit, and on SIGINT or SIGTERM
/// (Ctrl-C), which would otherwise skip the deinitialisers that kill them.
public enum ProcessReaper {
    private static let pids = Mutex(Set<Int32>())
    /// Kept alive for the process's life; written once, from `installSignalHandlers` at start-up.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    /// Remembers a child.
    public static func adopt(_ pid: Int32) { _ = pids.withLock { $0.insert(pid) } }

    /// Forgets a child that was stopped.
    public static func release(_ pid: Int32) { _ = pids.withLock { $0.remove(pid) } }

    /// SIGKILLs every remembered child (stopped ones are continued first so that they can die).
    public static func killAll() {
        for pid in pids.withLock({ $0 }) {
            kill(pid, SIGCONT)
            kill(pid, SIGKILL)
        }
    }

    /// Kills every child on SIGINT and SIGTERM, then exits with `status`.
    public static func installSignalHandlers(exitStatus status: Int32) {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                killAll()
                FileHandle.standardError.write(
                    Data("\nenvoy sim: interrupted; every process it started is stopped\n".utf8))
                exit(status)
            }
            source.resume()
            sources.append(source)
        }
    }
}
