import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// One connection to Redis. Many callers may send at once: commands are pipelined and replies
/// matched to callers in order (FIFO), all on the connection's event loop.
public final class RedisConnection: Sendable {
    let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Connects, upgrades to TLS if asked, authenticates and selects the database.
    static func connect(
        to endpoint: RedisEndpoint, tls: NIOSSLContext?, timeout: Duration, maxReplyBytes: Int
    ) async throws(RedisError) -> RedisConnection {
        let serverName: String? =
            if case .tcp(let host, _) = endpoint.address, !IPAddressText.isAddress(host) { host } else { nil }
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(Int64(timeout.inNanoseconds)))
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(RedisReplyDecoder(maxReplyBytes: maxReplyBytes)))
                    try channel.pipeline.syncOperations.addHandler(RedisCommandHandler())
                }
            }
        let channel: any Channel
        do {
            switch endpoint.address {
            case .tcp(let host, let port):
                channel = try await bootstrap.connect(host: host, port: port).get()
            case .unix(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            throw .connectionFailed("\(endpoint): \(Self.describe(error))")
        }
        let connection = RedisConnection(channel: channel)
        do {
            if let password = endpoint.password {
                let auth: [RedisArgument] =
                    endpoint.username.map { ["AUTH", RedisArgument($0), RedisArgument(password)] } ?? [
                        "AUTH", RedisArgument(password),
                    ]
                if case .error(let message) = try await connection.send(auth, timeout: timeout) {
                    throw RedisError.authenticationFailed(message)
                }
            }
            if endpoint.database != 0 {
                if case .error(let message) = try await connection.send(
                    ["SELECT", RedisArgument(endpoint.database)], timeout: timeout)
                {
                    throw RedisError.server(message)
                }
            }
        } catch let error as RedisError {
            connection.close()
            throw error
        } catch {
            connection.close()
            throw .connectionFailed(Self.describe(error))
        }
        return connection
    }

    /// Sends one command and waits up to `timeout` for its reply. An error reply is returned, not thrown.
    public func send(_ arguments: [RedisArgument], timeout: Duration) async throws(RedisError) -> RESPValue {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.inNanoseconds))) {
            promise.fail(RedisError.timeout(timeout))
        }
        var buffer = channel.allocator.buffer(capacity: 64)
        buffer.writeBytes(RESPEncoder.encode(arguments))
        channel.writeAndFlush(RedisRequest(bytes: buffer, promise: promise), promise: nil)
        do {
            // A cancelled caller stops waiting; its reply, when it comes, is matched to its slot and dropped.
            let value = try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                promise.fail(RedisError.cancelled)
            }
            deadline.cancel()
            return value
        } catch let error as RedisError {
            throw error
        } catch {
            throw .connectionFailed(Self.describe(error))
        }
    }

    /// Whether the connection is still open.
    public var isActive: Bool { channel.isActive }

    /// Closes the connection; pending callers fail.
    public func close() {
        channel.close(promise: nil)
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? RedisError { return error.description }
        if let error = error as? IOError { return error.description }
        return String(describing: error)
    }
}

/// A command on its way to the handler: its bytes and the promise its reply completes.
struct RedisRequest: Sendable {
    var bytes: ByteBuffer
    var promise: EventLoopPromise<RESPValue>
}

/// Turns bytes into `RESPValue`s with hiredis's reader.
final class RedisReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue
    private let reader: RESPReader

    init(maxReplyBytes: Int) {
        reader = RESPReader(maxReplyBytes: maxReplyBytes)
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        try buffer.withUnsafeReadableBytes { try reader.feed($0) }
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        while let value = try reader.next() {
            context.fireChannelRead(wrapInboundOut(value))
        }
        return .needMoreData
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// Matches replies to requests in order; fails every waiting caller when the connection breaks.
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append(request.promise)
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard let promise = waiting.popFirst() else {
            // A reply nobody asked for: the stream is out of step, so nothing after it can be trusted.
            context.fireErrorCaught(RedisError.protocolError("unsolicited reply"))
            return
        }
        promise.succeed(value)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(RedisError.connectionFailed(RedisConnection.describe(error)))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError.connectionFailed("connection closed"))
        context.fireChannelInactive()
    }

    private func failAll(_ error: RedisError) {
        while let promise = waiting.popFirst() { promise.fail(error) }
    }
}

/// Whether a host string is a literal address (TLS sends no SNI for those).
enum IPAddressText {
    static func isAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

extension Duration {
    var inNanoseconds: Double {
        Double(components.seconds) * 1e9 + Double(components.attoseconds) / 1e9
    }
}
