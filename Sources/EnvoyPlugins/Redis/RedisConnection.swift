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
    /// Commands encoded since the last drain, waiting for one write and one flush on the event loop.
    private let outbound: Mutex<RedisBatch>

    private init(channel: any Channel) {
        self.channel = channel
        self.outbound = Mutex(RedisBatch(bytes: channel.allocator.buffer(capacity: 0)))
    }

    /// Connects, upgrades to TLS if asked, authenticates and selects the database.
    static func connect(
        to endpoint: RedisEndpoint, on eventLoop: any EventLoop, tls: NIOSSLContext?, timeout: Duration,
        maxReplyBytes: Int
    ) async throws(RedisError) -> RedisConnection {
        let serverName: String? =
            if case .tcp(let host, _) = endpoint.address, !IPAddressText.isAddress(host) { host } else { nil }
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(Int64(timeout.inNanoseconds)))
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(RedisCommandHandler(maxReplyBytes: maxReplyBytes))
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
                    throw RedisError.databaseRefused(message)
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
    public nonisolated(nonsending) func send(_ arguments: [RedisArgument], timeout: Duration) async throws(RedisError)
        -> RESPValue
    {
        try await enqueue(replies: 1, timeout: timeout) { bytes in RESPEncoder.encode(arguments, into: &bytes) }
    }

    /// Sends several commands back to back in one write and waits up to `timeout` for all their replies, in
    /// order: one round trip. Error replies are returned in place, not thrown. Not a transaction: other callers'
    /// commands may run between them on the server.
    public nonisolated(nonsending) func pipeline(_ commands: [[RedisArgument]], timeout: Duration)
        async throws(RedisError) -> [RESPValue]
    {
        guard !commands.isEmpty else { return [] }
        let replies = try await enqueue(replies: commands.count, timeout: timeout) { bytes in
            for command in commands { RESPEncoder.encode(command, into: &bytes) }
        }
        // One command's reply comes back as it is (an array reply must not be taken for several replies).
        return commands.count == 1 ? [replies] : replies.array ?? []
    }

    /// Queues commands encoded by `encode` for the next drain and waits for their reply (gathered into an array
    /// when there is more than one).
    private nonisolated(nonsending) func enqueue(replies: Int, timeout: Duration, encode: (inout ByteBuffer) -> Void)
        async throws(RedisError)
        -> RESPValue
    {
        let waiter = ReplyWaiter()
        let scheduleDrain = outbound.withLock { batch in
            // Deadlines are taken in queue order, so on one connection they never decrease.
            let deadline = NIODeadline.now() + .nanoseconds(Int64(timeout.inNanoseconds))
            encode(&batch.bytes)
            batch.replies.append(PendingReply(waiter: waiter, count: replies, deadline: deadline, timeout: timeout))
            return batch.replies.count == 1
        }
        if scheduleDrain { channel.eventLoop.execute { [self] in drain() } }
        return try await waiter.wait()
    }

    /// Writes everything queued since the last drain as one buffer and flushes once, so concurrent callers
    /// share one pipeline pass and one system call. Runs on the event loop.
    private func drain() {
        let batch = outbound.withLock { batch in
            defer { batch = RedisBatch(bytes: channel.allocator.buffer(capacity: batch.bytes.readableBytes)) }
            return batch
        }
        // A write that fails (the connection closed meanwhile) fails its callers; completing one twice is a no-op.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            for reply in batch.replies { reply.waiter.fail(.connectionFailed(Self.describe(error))) }
        }
        channel.writeAndFlush(batch, promise: written)
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

/// Commands on their way to the handler: their RESP bytes, back to back, and who waits for each reply.
struct RedisBatch: Sendable {
    var bytes: ByteBuffer
    var replies: [PendingReply] = []
}

/// A caller waiting for a reply (or for `count` replies, gathered into an array), and when to give up.
struct PendingReply: Sendable {
    var waiter: ReplyWaiter
    var count: Int
    var deadline: NIODeadline
    var timeout: Duration
}

/// Decodes replies with hiredis's reader and matches them to callers in order; fails callers whose deadline
/// passed (their replies, when they come, are still matched and dropped); fails every waiting caller when the
/// connection breaks or the stream cannot be trusted (malformed, oversized or unsolicited replies).
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisBatch
    typealias OutboundOut = ByteBuffer

    private let reader: RESPReader
    private var waiting = CircularBuffer<PendingReply>()
    /// Replies received so far for the first waiting entry when it expects several.
    private var gathered: [RESPValue] = []
    /// The first `expired` entries of `waiting` have been failed for their deadline already.
    private var expired = 0
    private var sweeper: RepeatedTask?

    init(maxReplyBytes: Int) {
        reader = RESPReader(maxReplyBytes: maxReplyBytes)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let batch = unwrapOutboundIn(data)
        waiting.append(contentsOf: batch.replies)
        context.write(wrapOutboundOut(batch.bytes), promise: promise)
        if sweeper == nil {
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            sweeper = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10))
            { _ in
                loopBound.value.sweep()
            }
        }
    }

    /// Fails what has expired; stops the sweeping once nothing waits (an idle connection wakes nobody — ticking on
    /// regardless kept an idle `envoy serve` at 260 wake-ups a second), and the next write starts it again.
    private func sweep() {
        failExpired()
        if waiting.isEmpty {
            sweeper?.cancel()
            sweeper = nil
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            try buffer.withUnsafeReadableBytes { bytes throws(RedisError) in try reader.feed(bytes) }
            while let value = try reader.next() {
                guard let first = waiting.first else {
                    // A reply nobody asked for: the stream is out of step, so nothing after it can be trusted.
                    throw RedisError.protocolError("unsolicited reply")
                }
                var completed = value
                if first.count > 1 {
                    gathered.append(value)
                    guard gathered.count == first.count else { continue }
                    completed = .array(gathered)
                    gathered = []
                }
                waiting.removeFirst()
                if expired > 0 { expired -= 1 }
                first.waiter.succeed(completed)
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Closed before any caller learns of the failure, so that none finds the connection still active and
        // sends on it ("I/O on closed channel") instead of reconnecting.
        let pending = waiting
        waiting.removeAll()
        expired = 0
        gathered = []
        context.close(promise: nil)
        let failure = RedisError.connectionFailed(RedisConnection.describe(error))
        for reply in pending { reply.waiter.fail(failure) }
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
            let reply = waiting[waiting.index(waiting.startIndex, offsetBy: expired)]
            guard reply.deadline <= now else { return }
            reply.waiter.fail(.timeout(reply.timeout))
            expired += 1
        }
    }

    private func failAll(_ error: RedisError) {
        while let reply = waiting.popFirst() { reply.waiter.fail(error) }
        expired = 0
        gathered = []
    }
}

/// Where one caller waits for its reply. Completed exactly once — by the reply, a failure, the deadline or the
/// caller's cancellation, whichever comes first; later completions are ignored. Safe from any thread, so a reply
/// resumes its caller straight from the event loop and waiting costs the caller no hop to it.
final class ReplyWaiter: Sendable {
    private enum State {
        case pending
        case waiting(UnsafeContinuation<RESPValue, any Error>)
        case completed(Result<RESPValue, RedisError>)
        case consumed
    }

    private let state = Mutex(State.pending)

    /// Delivers the reply.
    func succeed(_ value: RESPValue) { complete(.success(value)) }

    /// Delivers a failure.
    func fail(_ error: RedisError) { complete(.failure(error)) }

    private func complete(_ result: Result<RESPValue, RedisError>) {
        let continuation: UnsafeContinuation<RESPValue, any Error>? = state.withLock { state in
            switch state {
            case .pending:
                state = .completed(result)
                return nil
            case .waiting(let continuation):
                state = .consumed
                return continuation
            case .completed, .consumed:
                return nil
            }
        }
        continuation?.resume(with: result.mapError { $0 })
    }

    /// Suspends until completed; a cancelled caller stops waiting at once (its reply, when it comes, is dropped).
    nonisolated(nonsending) func wait() async throws(RedisError) -> RESPValue {
        do {
            return try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation { continuation in
                    let ready: Result<RESPValue, RedisError>? = state.withLock { state in
                        guard case .completed(let result) = state else {
                            state = .waiting(continuation)
                            return nil
                        }
                        state = .consumed
                        return result
                    }
                    if let ready { continuation.resume(with: ready.mapError { $0 }) }
                }
            } onCancel: {
                fail(.cancelled)
            }
        } catch let error as RedisError {
            throw error
        } catch {
            throw .connectionFailed(String(describing: error))
        }
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
