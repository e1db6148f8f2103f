import EnvoySim
import Foundation
import Hummingbird
import Synchronization

/// A trace collector for tests: takes OTLP/HTTP JSON (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) on
/// `POST /v1/traces` and keeps every span it is sent.
public final class OTLPReceiver: Sendable {
    /// A span as received.
    public struct Span: Sendable, CustomStringConvertible {
        /// Its trace's id, 32 hex digits.
        public var traceID: String
        /// Its id, 16 hex digits.
        public var spanID: String
        /// Its parent's id; empty for a trace's root.
        public var parentSpanID: String
        /// Its name.
        public var name: String
        /// The `service.name` of the process that sent it.
        public var service: String
        /// Its attributes, as text.
        public var attributes: [String: String]

        /// `service name (span ← parent)`.
        public var description: String { "\(service) \(name) (\(spanID.prefix(6)) ← \(parentSpanID.prefix(6)))" }
    }

    private let server: MockServer
    private let received = Mutex([Span]())

    /// The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    public var endpoint: String { server.baseURL }
    /// Every span received so far.
    public var spans: [Span] { received.withLock { $0 } }

    private init(server: MockServer) { self.server = server }

    /// Starts a receiver on a free loopback port.
    public static func start() async throws -> OTLPReceiver {
        let box = Mutex<OTLPReceiver?>(nil)
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 << 20)
            let spans = Self.spans(in: Data(body.readableBytesView))
            box.withLock { $0 }?.received.withLock { $0 += spans }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        let receiver = OTLPReceiver(server: try await MockServer.start(router, name: "otlp"))
        box.withLock { $0 = receiver }
        return receiver
    }

    /// Stops the server.
    public func stop() async { await server.stop() }

    /// The spans of an `ExportTraceServiceRequest` in JSON (ids in hex, or base64 as protobuf's JSON mapping writes
    /// them).
    static func spans(in json: Data) -> [Span] {
        guard let root = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else { return [] }
        var spans: [Span] = []
        for resource in root["resourceSpans"] as? [[String: Any]] ?? [] {
            let service =
                attributes((resource["resource"] as? [String: Any])?["attributes"])["service.name"] ?? ""
            for scope in resource["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in scope["spans"] as? [[String: Any]] ?? [] {
                    spans.append(
                        Span(
                            traceID: hex(span["traceId"]), spanID: hex(span["spanId"]),
                            parentSpanID: hex(span["parentSpanId"]), name: span["name"] as? String ?? "",
                            service: service, attributes: attributes(span["attributes"])))
                }
            }
        }
        return spans
    }

    static func hex(_ value: Any?) -> String {
        guard let text = value as? String, !text.isEmpty else { return "" }
        if text.count % 2 == 0, text.allSatisfy(\.isHexDigit), text.count == 32 || text.count == 16 {
            return text.lowercased()
        }
        guard let bytes = Data(base64Encoded: text) else { return text }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func attributes(_ value: Any?) -> [String: String] {
        var result: [String: String] = [:]
        for attribute in value as? [[String: Any]] ?? [] {
            guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any],
                let first = value.values.first
            else { continue }
            result[key] = "\(first)"
        }
        return result
    }
}
