import DequeModule
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy on loopback between the app and Redis that passes bytes through, delays them (added latency), or
/// holds them all (a blackhole: connections stay open and nothing arrives until it ends). Order is kept.
public final class FaultProxy: Sendable {
    /// What the proxy does to traffic.
    public enum Mode: Sendable, Equatable {
        /// Bytes pass at once.
        case pass
        /// Each chunk is held this long, each way.
        case latency(Duration)
        /// Nothing passes until the mode changes.
        case blackhole
    }

    /// The port the app connects to.
    public let port: Int
    private let channel: any Channel
    private let mode: ModeBox

    /// Starts a proxy to `127.0.0.1:targetPort` on a free port.
    public static func start(targetPort: Int) async throws -> FaultProxy {
        let mode = ModeBox()
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: targetPort)
                    .flatMap { outbound in
                        let toRedis = Relay(peer: outbound, mode: mode)
                        let toApp = Relay(peer: inbound, mode: mode)
                        // The accepted channel starts reading once this returns, with both relays in place.
                        return inbound.pipeline.addHandler(toRedis).flatMap { outbound.pipeline.addHandler(toApp) }
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FaultProxy(port: channel.localAddress?.port ?? 0, channel: channel, mode: mode)
    }

    private init(port: Int, channel: any Channel, mode: ModeBox) {
        self.port = port
        self.channel = channel
        self.mode = mode
    }

    /// Changes what happens to traffic from now on (held bytes flow once the blackhole ends).
    public func set(_ newMode: Mode) { mode.value.withLock { $0 = newMode } }

    /// Stops listening (open connections close when either side closes).
    public func stop() async { try? await channel.close() }
}

final class ModeBox: Sendable {
    let value = Mutex(FaultProxy.Mode.pass)
}

/// Forwards what one side reads to its peer, through the proxy's mode, in order.
private final class Relay: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let peer: any Channel
    let mode: ModeBox
    private var pending = Deque<(buffer: ByteBuffer, arrived: NIODeadline)>()
    private var scheduled = false

    init(peer: any Channel, mode: ModeBox) {
        self.peer = peer
        self.mode = mode
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending.append((unwrapInboundIn(data), .now()))
        drain(context.eventLoop)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Sends what may go now; schedules itself for the rest.
    private func drain(_ eventLoop: any EventLoop) {
        guard !scheduled else { return }
        while let first = pending.first {
            let wait: TimeAmount
            switch mode.value.withLock({ $0 }) {
            case .pass:
                wait = .zero
            case .latency(let delay):
                let due =
                    first.arrived
                    + .nanoseconds(
                        Int64(delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000))
                wait = due > .now() ? due - .now() : .zero
            case .blackhole:
                wait = .milliseconds(20)
            }
            if wait > .zero {
                scheduled = true
                eventLoop.scheduleTask(in: wait) {
                    self.scheduled = false
                    self.drain(eventLoop)
                }
                return
            }
            peer.writeAndFlush(pending.removeFirst().buffer, promise: nil)
        }
    }
}
