import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// How long a client may take at each stage of a connection before the server closes it.
public struct ConnectionTimeouts: Sendable, Equatable {
    /// From a connection's opening (or the first byte of its next request) to the end of the request's head.
    public var header: Duration
    /// A keep-alive connection waiting for its next request.
    public var idle: Duration
    /// The longest pause between two reads of a request body.
    public var body: Duration

    /// Deadlines for each stage (defaults: 10 s for headers, 60 s idle, 30 s of a stalled body).
    public init(header: Duration = .seconds(10), idle: Duration = .seconds(60), body: Duration = .seconds(30)) {
        self.header = header
        self.idle = idle
        self.body = body
    }
}

/// A server child channel whose connections are bounded in time and held to HTTP/1.1's framing rules before a
/// request reaches `Base`: a slow head, an idle keep-alive connection or a stalled body is closed; a request
/// without exactly one `Host` (HTTP/1.1) is 400; a head over the size limit is 431; unparsable framing is 400 —
/// each answered as problem+json. HTTP/1.0 requests without keep-alive close the connection after the response.
public struct GuardedHTTPChannel<Base: ServerChildChannel>: ServerChildChannel {
    let base: Base
    let timeouts: ConnectionTimeouts

    /// Wraps `base`, closing connections that miss `timeouts`.
    public init(_ base: Base, timeouts: ConnectionTimeouts) {
        self.base = base
        self.timeouts = timeouts
    }

    /// Sets the channel up as `base` does, with the guard's two handlers around NIO's HTTP decoder.
    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Base.Value> {
        let timeouts = timeouts
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let guardHandler = HTTPConnectionGuard(timeouts: timeouts, logger: logger)
            try operations.addHandler(guardHandler, position: .after(decoder))
            try operations.addHandler(HTTPConnectionGuard.BytesArrived(guardHandler), position: .first)
            return value
        }
    }

    /// Handles the connection as `base` does.
    public func handle(value: Base.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// The handler behind `GuardedHTTPChannel`: sits between NIO's HTTP/1 decoder and Hummingbird, sees each request
/// head and response end, and keeps one deadline for the connection's current stage.
final class HTTPConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let logger: Logger
    private var context: ChannelHandlerContext?
    /// A request's head has been read and its end not yet.
    private var readingRequest = false
    /// Requests whose responses have not ended.
    private var responsesOwed = 0
    /// Bytes of a next request have arrived (the header deadline runs instead of the idle one).
    private var nextRequestStarted = true
    /// The current request was refused here; its remaining parts are dropped.
    private var discarding = false
    /// The response to the current request must close the connection (HTTP/1.0 without keep-alive).
    private var closeAfterResponse = false
    private var deadline: NIODeadline?
    private var stage = "header"
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    private let headerLimit: TimeAmount
    private let idleLimit: TimeAmount
    private let bodyLimit: TimeAmount

    init(timeouts: ConnectionTimeouts, logger: Logger) {
        self.logger = logger
        func amount(_ duration: Duration) -> TimeAmount { .nanoseconds(Int64(duration.inSeconds * 1e9)) }
        (headerLimit, idleLimit, bodyLimit) = (amount(timeouts.header), amount(timeouts.idle), amount(timeouts.body))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        set(headerLimit, stage: "header")
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    /// Bytes came in off the socket (seen before the decoder).
    func bytesArrived() {
        if readingRequest {
            set(bodyLimit, stage: "body")
        } else if !nextRequestStarted && responsesOwed == 0 {
            nextRequestStarted = true
            set(headerLimit, stage: "header")
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            readingRequest = true
            nextRequestStarted = false
            responsesOwed += 1
            set(bodyLimit, stage: "body")
            if let refusal = Self.refusal(of: head) {
                discarding = true
                respond(refusal, context: context)
                return
            }
            closeAfterResponse = !head.isKeepAlive
        case .body:
            if discarding { return }
        case .end:
            readingRequest = false
            if responsesOwed == 0 { set(idleLimit, stage: "idle") } else { deadline = nil }
            if discarding {
                discarding = false
                return
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var part = unwrapOutboundIn(data)
        switch part {
        case .head(var head) where closeAfterResponse:
            head.headers.replaceOrAdd(name: "connection", value: "close")
            part = .head(head)
            context.write(wrapOutboundOut(part), promise: promise)
        case .end where closeAfterResponse:
            responsesOwed = max(0, responsesOwed - 1)
            let done = context.eventLoop.makePromise(of: Void.self)
            done.futureResult.cascade(to: promise)
            done.futureResult.whenComplete { _ in context.close(promise: nil) }
            context.writeAndFlush(data, promise: done)
        case .end:
            responsesOwed = max(0, responsesOwed - 1)
            if responsesOwed == 0 && !readingRequest {
                if nextRequestStarted {
                    set(headerLimit, stage: "header")
                } else {
                    set(idleLimit, stage: "idle")
                }
            }
            context.write(data, promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }

    /// A parse error before a request reached the router is answered here (431 for an oversized head, else 400)
    /// and closes the connection; one in the middle of a body goes on to the route reading it, which answers 400.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if readingRequest && !discarding {
            context.fireErrorCaught(error)
            return
        }
        guard !discarding, responsesOwed == 0 else {
            context.close(promise: nil)
            return
        }
        let problem: Problem =
            switch parserError {
            case .headerOverflow:
                Problem(
                    .requestHeaderFieldsTooLarge,
                    detail: "The request's header fields are larger than the server accepts.")
            default:
                Problem(
                    .badRequest, title: "Malformed request",
                    detail: "The request is not valid HTTP/1.1 (\(parserError)).")
            }
        discarding = true
        responsesOwed += 1
        respond(problem, context: context)
    }

    /// The problem a request head is refused with before routing, if any.
    static func refusal(of head: HTTPRequestHead) -> Problem? {
        if head.version.major == 1 && head.version.minor >= 1 {
            let hosts = head.headers["host"]
            guard hosts.count == 1 else {
                return Problem(
                    .badRequest, title: "Malformed request",
                    detail: hosts.isEmpty
                        ? "An HTTP/1.1 request needs a Host header."
                        : "The request has \(hosts.count) Host headers; one is allowed.")
            }
        }
        return nil
    }

    /// Writes `problem` as the response and closes the connection once it is sent.
    private func respond(_ problem: Problem, context: ChannelHandlerContext) {
        let body = problem.encodedBody()
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/problem+json")
        headers.add(name: "content-length", value: String(body.count))
        headers.add(name: "connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: problem.status.code), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    private func set(_ limit: TimeAmount, stage: String) {
        let deadline = NIODeadline.now() + limit
        self.deadline = deadline
        self.stage = stage
        guard let context else { return }
        if let timerDeadline, timerDeadline <= deadline, timer != nil { return }
        timer?.cancel()
        schedule(at: deadline, context: context)
    }

    /// Arms the timer for `deadline`, or sooner: it never fires later than a header timeout from now, so that a
    /// later, earlier deadline (the header one, when the next request's first byte arrives) never has to cancel
    /// and re-arm it — the request path schedules no timer; an idle connection's timer fires every header timeout.
    private func schedule(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let fireAt = min(deadline, .now() + headerLimit)
        timerDeadline = fireAt
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: fireAt) { [self] in
            timer = nil
            timerDeadline = nil
            guard let current = self.deadline, let context = self.context else { return }
            if current <= .now() {
                logger.debug("closing a connection that missed its deadline", metadata: ["http.stage": "\(stage)"])
                context.close(promise: nil)
            } else {
                schedule(at: current, context: context)
            }
        }
    }

    /// Tells the guard that bytes arrived, from the front of the pipeline (before the decoder buffers them).
    final class BytesArrived: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let owner: HTTPConnectionGuard

        init(_ owner: HTTPConnectionGuard) {
            self.owner = owner
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            owner.bytesArrived()
            context.fireChannelRead(data)
        }
    }
}

@available(*, unavailable)
extension HTTPConnectionGuard: Sendable {}
