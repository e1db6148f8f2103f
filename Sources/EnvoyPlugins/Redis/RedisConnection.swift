import EnvoyFramework
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One connection to Redis. Many callers may send at once: commands are pipelined and replies
/// matched to callers in order (FIFO), all on the connection's event loop.
public final class RedisConnection: Sendable {
    let channel: any Channel
    private let outbound = Mutex([RedisRequest]())

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
        var buffer = channel.allocator.buffer(capacity: 64)
        RESPEncoder.encode(arguments, into: &buffer)
        enqueue(
            RedisRequest(
                bytes: buffer, promise: promise, deadline: .now() + .nanoseconds(Int64(timeout.inNanoseconds)),
                timeout: timeout))
        do {
            // A cancelled caller stops waiting; its reply, when it comes, is matched to its slot and dropped.
            return try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                promise.fail(RedisError.cancelled)
            }
        } catch let error as RedisError {
            throw error
        } catch {
            throw .connectionFailed(Self.describe(error))
        }
    }

    /// Queues a request; the first request into an empty queue schedules one event-loop task that writes
    /// everything queued by then and flushes once, so concurrent callers share hops and system calls.
    private func enqueue(_ request: RedisRequest) {
        let scheduleDrain = outbound.withLock { queue in
            queue.append(request)
            return queue.count == 1
        }
        guard scheduleDrain else { return }
        channel.eventLoop.execute { [self] in
            let batch = outbound.withLock { queue in
                defer { queue.removeAll(keepingCapacity: true) }
                return queue
            }
            guard channel.isActive else {
                for request in batch { request.promise.fail(RedisError.connectionFailed("connection closed")) }
                return
            }
            for request in batch { channel.write(request, promise: nil) }
            channel.flush()
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

/// A command on its way to the handler: its bytes, the promise its reply completes, and when to give up.
struct RedisRequest: Sendable {
    var bytes: ByteBuffer
    var promise: EventLoopPromise<RESPValue>
    var deadline: NIODeadline
    var timeout: Duration
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

/// Matches replies to requests in order; fails callers whose deadline passed (their replies, when they come,
/// are still matched and dropped); fails every waiting caller when the connection breaks.
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<RedisRequest>()
    /// The first `expired` entries of `waiting` have been failed for their deadline already.
    private var expired = 0
    private var sweeper: RepeatedTask?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append(request)
        context.write(wrapOutboundOut(request.bytes), promise: promise)
        if sweeper == nil {
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            sweeper = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10))
            { _ in
                loopBound.value.failExpired()
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard let request = waiting.popFirst() else {
            // A reply nobody asked for: the stream is out of step, so nothing after it can be trusted.
            context.fireErrorCaught(RedisError.protocolError("unsolicited reply"))
            return
        }
        if expired > 0 { expired -= 1 }
        request.promise.succeed(value)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(RedisError.connectionFailed(RedisConnection.describe(error)))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError.connectionFailed("connection closed"))
        sweeper?.cancel()
        sweeper = nil
        context.fireChannelInactive()
    }

    /// Requests on one connection are sent in deadline order (one timeout per client), so expired ones form a prefix.
    private func failExpired() {
        let now = NIODeadline.now()
        while expired < waiting.count {
            let request = waiting[waiting.index(waiting.startIndex, offsetBy: expired)]
            guard request.deadline <= now else { return }
            request.promise.fail(RedisError.timeout(request.timeout))
            expired += 1
        }
    }

    private func failAll(_ error: RedisError) {
        while let request = waiting.popFirst() { request.promise.fail(error) }
        expired = 0
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
        inSeconds * 1e9
    }
}
