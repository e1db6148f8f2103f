import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A TCP connection that sends raw bytes and keeps what comes back: a hostile or careless client for tests.
public final class RawConnection: Sendable {
    let channel: any Channel
    let received: Received

    final class Received: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = Mutex([UInt8]())

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            bytes.withLock { $0 += buffer.readableBytesView }
        }
    }

    private init(channel: any Channel, received: Received) {
        self.channel = channel
        self.received = received
    }

    /// Connects to `127.0.0.1:port`.
    public static func open(port: Int) async throws -> RawConnection {
        let received = Received()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(received) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawConnection(channel: channel, received: received)
    }

    /// Sends `text` as it is.
    public func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Everything the server sent so far.
    public var text: String { String(decoding: received.bytes.withLock { $0 }, as: UTF8.self) }

    /// Whether the server has closed the connection.
    public var isClosed: Bool { !channel.isActive }

    /// Waits up to `timeout` for the server to close the connection; returns whether it did.
    public func waitForClose(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while channel.isActive && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return !channel.isActive
    }

    /// Waits up to `timeout` until the bytes received contain `text`.
    public func waitFor(_ text: String, timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !self.text.contains(text) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return self.text.contains(text)
    }

    /// Closes the connection from this side.
    public func close() {
        channel.close(promise: nil)
    }
}
