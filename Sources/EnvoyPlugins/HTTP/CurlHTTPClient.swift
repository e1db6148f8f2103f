import Tracing
import CCurl
import EnvoyFramework
import Foundation
import Synchronization

/// An HTTP client over libcurl's multi interface. One thread of its own runs every transfer, so no Swift
/// concurrency thread ever blocks; connections are pooled (kept alive and reused) across requests.
public final class CurlHTTPClient: Sendable {
    /// Limits that hold for every request.
    public struct Configuration: Sendable {
        /// How long connecting (TCP and TLS) may take.
        public var connectTimeout: Duration
        /// Connections kept open for reuse.
        public var maxIdleConnections: Int
        /// Responses larger than this fail.
        public var maxResponseBytes: Int

        /// Limits with the given values.
        public init(
            connectTimeout: Duration = .seconds(5), maxIdleConnections: Int = 16, maxResponseBytes: Int = 8 << 20
        ) {
            self.connectTimeout = connectTimeout
            self.maxIdleConnections = maxIdleConnections
            self.maxResponseBytes = maxResponseBytes
        }
    }

    private let engine: CurlEngine

    /// A client with its own transfer thread.
    public init(configuration: Configuration = Configuration()) {
        engine = CurlEngine(configuration: configuration)
        let engine = self.engine
        let thread = Thread { engine.run() }
        thread.name = "envoy-curl"
        thread.start()
    }

    deinit {
        engine.shutdown()
    }

    /// Performs `request` in a span `HTTP METHOD host` that it continues at the server (`traceparent`); throws
    /// `OutboundHTTPError` when no response arrives, `CancellationError` if cancelled.
    public func execute(_ request: OutboundRequest) async throws -> OutboundResponse {
        let host = URLComponents(string: request.url)?.host ?? "?"
        return try await Traces.span("HTTP \(request.method) \(host)", kind: .client) { span in
            var request = request
            request.headers += Traces.headers()
            span?.attributes["http.request.method"] = request.method
            span?.attributes["server.address"] = host
            let response = try await perform(request)
            span?.attributes["http.response.status_code"] = response.status
            return response
        }
    }

    private func perform(_ request: OutboundRequest) async throws -> OutboundResponse {
        let transfer = try CurlTransfer(request: request, configuration: engine.configuration)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                transfer.continuation = continuation
                engine.submit(transfer)
            }
        } onCancel: {
            engine.cancel(transfer)
        }
    }

    /// Stops the transfer thread; requests in flight fail with `.shutDown`.
    public func shutdown() {
        engine.shutdown()
    }
}

/// One request's easy handle and what has arrived so far.
///
/// `@unchecked Sendable`, because: the caller sets it up (`init`, `continuation`) before `CurlEngine.submit`, and
/// from then on only the transfer thread touches it, the hand-over going through `CurlEngine.inbox`'s lock; a
/// transfer `submit` refuses never reaches that thread and is finished by the caller alone. `cancelRequested` is
/// the one field both sides touch, and only while holding that same lock.
final class CurlTransfer: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    var continuation: CheckedContinuation<OutboundResponse, any Error>?
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    let maxResponseBytes: Int
    var tooLarge = false
    /// Set by `CurlEngine.cancel`, read by `CurlEngine.submit`: both inside `CurlEngine.inbox`'s lock.
    var cancelRequested = false
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var form: OpaquePointer?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    private let host: String

    init(request: OutboundRequest, configuration: CurlHTTPClient.Configuration) throws {
        guard let url = URL(string: request.url), let scheme = url.scheme?.lowercased(),
            ["http", "https"].contains(scheme),
            let host = url.host
        else { throw OutboundHTTPError.invalidRequest("not an http(s) URL") }
        guard let handle = curl_easy_init() else { throw OutboundHTTPError.transport("curl_easy_init failed") }
        self.handle = handle
        self.host = host
        self.maxResponseBytes = configuration.maxResponseBytes
        try configure(request, configuration)
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headerList)
        if let form { curl_mime_free(form) }
        errorBuffer.deallocate()
    }

    private func configure(_ request: OutboundRequest, _ configuration: CurlHTTPClient.Configuration) throws {
        func check(_ code: CURLcode) throws {
            guard code == CURLE_OK else {
                throw OutboundHTTPError.invalidRequest(String(cString: curl_easy_strerror(code)))
            }
        }
        try check(envoy_curl_setopt_string(handle, CURLOPT_URL, request.url))
        try check(envoy_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
        try check(envoy_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        try check(envoy_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        try check(envoy_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeout.milliseconds))
        try check(envoy_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, request.timeout.milliseconds))
        try check(envoy_curl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1))
        try check(envoy_curl_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, ""))
        errorBuffer.initialize(to: 0)
        try check(envoy_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        let me = Unmanaged.passUnretained(self).toOpaque()
        try check(envoy_curl_setopt_write_function(handle, curlWriteBody))
        try check(envoy_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, me))
        try check(envoy_curl_setopt_header_function(handle, curlWriteHeader))
        try check(envoy_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, me))
        if let auth = request.basicAuth {
            try check(envoy_curl_setopt_string(handle, CURLOPT_USERNAME, auth.user))
            try check(envoy_curl_setopt_string(handle, CURLOPT_PASSWORD, auth.password))
        }
        var fields = request.headers.map { "\($0.name): \($0.value)" }
        switch request.body {
        case .bytes(let bytes, let contentType):
            fields.append("Content-Type: \(contentType)")
            try check(envoy_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, bytes.count))
            if bytes.isEmpty {
                try check(envoy_curl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, ""))
            } else {
                try bytes.withUnsafeBytes { raw in
                    // libcurl copies the bytes before this returns.
                    try check(
                        envoy_curl_setopt_pointer(
                            handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress!)))
                }
            }
        case .form(let parts):
            let mime = curl_mime_init(handle)
            form = mime
            for part in parts {
                let mimePart = curl_mime_addpart(mime)
                try check(curl_mime_name(mimePart, part.name))
                try check(curl_mime_data(mimePart, part.value, part.value.utf8.count))
            }
            try check(envoy_curl_setopt_pointer(handle, CURLOPT_MIMEPOST, UnsafeMutableRawPointer(mime)))
        case nil:
            break
        }
        fields.append("Expect:")  // no 100-continue round trip
        for field in fields {
            guard !field.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                throw OutboundHTTPError.invalidRequest("line break in a header field")
            }
            headerList = curl_slist_append(headerList, field)
        }
        try check(envoy_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList)))
        switch request.method {
        case "GET": try check(envoy_curl_setopt_long(handle, CURLOPT_HTTPGET, 1))
        case "POST" where request.body != nil: break
        default: try check(envoy_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method))
        }
    }

    /// The outcome of a finished transfer.
    func outcome(_ code: CURLcode) -> Result<OutboundResponse, any Error> {
        if tooLarge { return .failure(OutboundHTTPError.responseTooLarge(maxResponseBytes)) }
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            let message = "\(host): " + (detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail)
            return .failure(
                code == CURLE_OPERATION_TIMEDOUT
                    ? OutboundHTTPError.timedOut(message) : OutboundHTTPError.transport(message))
        }
        var status = 0
        var connections = 0
        _ = envoy_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        _ = envoy_curl_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connections)
        return .success(OutboundResponse(status: status, headers: headers, body: body, newConnections: connections))
    }

    /// Resumes the waiting caller once.
    func finish(_ result: Result<OutboundResponse, any Error>) {
        continuation?.resume(with: result)
        continuation = nil
    }
}

private let curlWriteBody: envoy_curl_data_callback = { data, size, count, userdata in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    let length = size * count
    guard transfer.body.count + length <= transfer.maxResponseBytes else {
        transfer.tooLarge = true
        return 0
    }
    transfer.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
    return length
}

private let curlWriteHeader: envoy_curl_data_callback = { data, size, count, userdata in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    let length = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    if line.hasPrefix("HTTP/") {
        transfer.headers = []  // a new response (after 100 Continue or a proxy's CONNECT) starts over
    } else if let colon = line.firstIndex(of: ":") {
        transfer.headers.append(
            (
                String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespacesAndNewlines)
            ))
    }
    return length
}

/// The transfer thread's state: a multi handle, the transfers it runs, and what callers handed over.
///
/// `@unchecked Sendable`, because: callers touch only `inbox` (a `Mutex`) and `curl_multi_wakeup`, which libcurl
/// allows from any thread; `active` and every other multi-handle call belong to the transfer thread (`run`).
final class CurlEngine: @unchecked Sendable {
    let configuration: CurlHTTPClient.Configuration
    private let multi: UnsafeMutableRawPointer
    private struct Inbox {
        var submitted: [CurlTransfer] = []
        var cancelled: [CurlTransfer] = []
        var stopping = false
    }
    private let inbox = Mutex(Inbox())
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]

    init(configuration: CurlHTTPClient.Configuration) {
        _ = curlGlobalInit
        self.configuration = configuration
        multi = curl_multi_init()
        _ = envoy_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maxIdleConnections)
    }

    deinit {
        // Only here, when nobody can call `curl_multi_wakeup` any more (every caller and the thread hold the engine).
        curl_multi_cleanup(multi)
    }

    func submit(_ transfer: CurlTransfer) {
        // Decided inside the lock, so that `cancelRequested` is never read outside it.
        let refusal = inbox.withLock { inbox -> (any Error)? in
            if transfer.cancelRequested { return CancellationError() }
            if inbox.stopping { return OutboundHTTPError.shutDown }
            inbox.submitted.append(transfer)
            return nil
        }
        if let refusal {
            transfer.finish(.failure(refusal))
        } else {
            curl_multi_wakeup(multi)
        }
    }

    func cancel(_ transfer: CurlTransfer) {
        inbox.withLock { inbox in
            transfer.cancelRequested = true
            inbox.cancelled.append(transfer)
        }
        curl_multi_wakeup(multi)
    }

    func shutdown() {
        inbox.withLock { $0.stopping = true }
        curl_multi_wakeup(multi)
    }

    /// The transfer thread's loop: add what was submitted, drive transfers, hand back finished ones, sleep.
    func run() {
        while true {
            let (submitted, cancelled, stopping) = inbox.withLock { inbox in
                defer {
                    inbox.submitted = []
                    inbox.cancelled = []
                }
                return (inbox.submitted, inbox.cancelled, inbox.stopping)
            }
            for transfer in submitted {
                active[transfer.handle] = transfer
                curl_multi_add_handle(multi, transfer.handle)
            }
            for transfer in cancelled where active[transfer.handle] === transfer {
                remove(transfer, result: .failure(CancellationError()))
            }
            if stopping {
                for transfer in active.values { remove(transfer, result: .failure(OutboundHTTPError.shutDown)) }
                return  // the multi handle lives on until deinit: a late `submit` or `cancel` may still wake it
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle,
                    let transfer = active[handle]
                else { continue }
                remove(transfer, result: transfer.outcome(envoy_curl_msg_result(message)))
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }

    private func remove(_ transfer: CurlTransfer, result: Result<OutboundResponse, any Error>) {
        curl_multi_remove_handle(multi, transfer.handle)
        active[transfer.handle] = nil
        transfer.finish(result)
    }
}

/// libcurl's global set-up, run once before the first handle.
private let curlGlobalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

extension Duration {
    /// Whole milliseconds, at least 1 (libcurl reads 0 as "no limit").
    var milliseconds: Int { max(1, Int(inSeconds * 1000)) }
}
