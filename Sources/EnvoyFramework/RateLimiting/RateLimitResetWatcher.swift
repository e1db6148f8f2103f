import Foundation
import ServiceLifecycle

/// Makes this instance forget its remembered refusals of every key an operator reset on any instance: reads the
/// store's recent resets every `interval` and tells `denied` to forget them.
public struct RateLimitResetWatcher: Service {
    let store: any RateLimitAdministration
    let denied: DeniedKeys
    let interval: Duration

    /// Watches `store`'s resets for `denied`, every `interval`.
    public init(store: any RateLimitAdministration, denied: DeniedKeys, interval: Duration = .seconds(1)) {
        self.store = store
        self.denied = denied
        self.interval = interval
    }

    /// Loops until graceful shutdown; the store is asked only while refusals are remembered (an idle instance
    /// costs it nothing), and one that fails is asked again next time, from the same moment.
    public func run() async throws {
        var since = Date().timeIntervalSince1970 - interval.inSeconds
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let asked = Date().timeIntervalSince1970
            if !denied.remembersAny {
                since = asked
            } else if let resets = try? await store.resets(since: since - 1) {  // a second's overlap for clock steps
                for reset in resets { denied.forget(policy: reset.policy, key: reset.key) }
                since = asked
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
