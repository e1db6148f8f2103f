import HummingbirdCore
import Logging
import NIOCore
import NIOPosix

/// Runs Swift tasks on one NIO event loop: jobs enqueued here run on that loop's thread, in order.
public final class EventLoopTaskExecutor: TaskExecutor {
    /// The loop the jobs run on.
    public let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Schedules `job` on the event loop.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    private static let all: [ObjectIdentifier: EventLoopTaskExecutor] = {
        var executors: [ObjectIdentifier: EventLoopTaskExecutor] = [:]
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            executors[ObjectIdentifier(loop)] = EventLoopTaskExecutor(loop)
        }
        return executors
    }()

    /// The executor of `eventLoop` when it is one of NIO's shared loops (made once per loop), else a new one.
    public static func on(_ eventLoop: any EventLoop) -> EventLoopTaskExecutor {
        all[ObjectIdentifier(eventLoop)] ?? EventLoopTaskExecutor(eventLoop)
    }
}

/// A server child channel whose connections are handled on their own event loop: the request's task, the Redis
/// replies it waits for and the response's writes stay on one thread, with no hop to the concurrency pool.
public struct EventLoopAffineChannel<Base: ServerChildChannel>: ServerChildChannel {
    let base: Base

    /// Wraps `base`.
    public init(_ base: Base) {
        self.base = base
    }

    /// Sets the channel up as `base` does.
    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Base.Value> {
        base.setup(channel: channel, logger: logger)
    }

    /// Handles the connection as `base` does, on its channel's event loop.
    public func handle(value: Base.Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor.on(value.channel.eventLoop)) {
            await base.handle(value: value, logger: logger)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with each connection bounded by `timeouts` (see `GuardedHTTPChannel`) and handled on its own event
    /// loop (see `EventLoopAffineChannel`).
    public static func http1OnEventLoops(
        configuration: HTTP1Channel.Configuration = .init(), timeouts: ConnectionTimeouts = .init()
    ) -> HTTPServerBuilder {
        .init { responder in
            EventLoopAffineChannel(
                GuardedHTTPChannel(HTTP1Channel(responder: responder, configuration: configuration), timeouts: timeouts)
            )
        }
    }
}
