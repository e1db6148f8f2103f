import EnvoyFramework
import Foundation

/// Sends email through Mailgun's HTTP API (`POST {base}/v3/{domain}/messages`, multipart form, Basic auth
/// `api:KEY`) over a pooled libcurl client. Mailgun's limits (3 tags, 1,000 recipients a message) are its own and
/// checked here. Failures are `MailError`s: 4xx rejected (with Mailgun's message), 429 rate limited until
/// `X-RateLimit-Reset`, 5xx, timeouts and odd replies unavailable.
public struct MailgunMailer: Mailer, CustomStringConvertible {
    /// `mailgun DOMAIN via BASE` (never the key).
    public var description: String {
        "mailgun \(configuration.domain) via \(configuration.baseURL)\(configuration.testMode ? " (test mode)" : "")"
    }

    /// Account, region and limits.
    public struct Configuration: Sendable {
        /// The API key (sent as the Basic-auth password; never logged).
        public var apiKey: String
        /// The sending domain.
        public var domain: String
        /// `https://api.mailgun.net` (US), `https://api.eu.mailgun.net` (EU), or a mock.
        public var baseURL: String
        /// The whole request's deadline.
        public var timeout: Duration
        /// Marks every message `o:testmode` (accepted, not delivered).
        public var testMode: Bool

        /// A configuration for `domain` with `apiKey`.
        public init(
            apiKey: String, domain: String, baseURL: String = "https://api.mailgun.net",
            timeout: Duration = .seconds(15),
            testMode: Bool = false
        ) {
            self.apiKey = apiKey
            self.domain = domain
            self.baseURL = baseURL
            self.timeout = timeout
            self.testMode = testMode
        }
    }

    let configuration: Configuration
    let client: CurlHTTPClient

    /// A mailer for `configuration`, sharing `client`'s connections.
    public init(configuration: Configuration, client: CurlHTTPClient = CurlHTTPClient()) {
        self.configuration = configuration
        self.client = client
    }

    /// Mailgun takes at most 1,000 recipients a message.
    public var maxRecipientsPerMessage: Int { 1000 }

    /// Sends `message`; returns Mailgun's message id.
    public func send(_ message: EmailMessage) async throws -> MailReceipt {
        try message.validate()
        guard message.tags.count <= 3 else {
            throw MailError.rejected("mailgun takes at most 3 tags a message, got \(message.tags.count)")
        }
        guard message.recipientCount <= maxRecipientsPerMessage else {
            throw MailError.rejected("mailgun takes at most 1,000 recipients a message, got \(message.recipientCount)")
        }
        let domain = configuration.domain.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? ""
        let response: OutboundResponse
        do {
            response = try await client.execute(
                OutboundRequest(
                    method: "POST", url: OutboundRequest.url(configuration.baseURL, "/v3/\(domain)/messages"),
                    headers: [("Accept", "application/json")],
                    body: .form(Self.form(message, testMode: configuration.testMode)),
                    basicAuth: ("api", configuration.apiKey), timeout: configuration.timeout))
        } catch let error as OutboundHTTPError {
            throw MailError.unavailable("mailgun unreachable: \(error)")
        }
        return try Self.receipt(from: response)
    }

    /// Mailgun's form fields for `message`, in order.
    static func form(_ message: EmailMessage, testMode: Bool) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [("from", mailbox(message.from, name: message.fromName))]
        fields += message.to.map { ("to", $0) }
        fields += message.cc.map { ("cc", $0) }
        fields += message.bcc.map { ("bcc", $0) }
        fields.append(("subject", message.subject))
        if let text = message.text { fields.append(("text", text)) }
        if let html = message.html { fields.append(("html", html)) }
        if let template = message.storedTemplate {
            fields.append(("template", template.name))
            fields.append(("t:variables", json(template.variables)))
        }
        fields += message.tags.map { ("o:tag", $0) }
        if message.testMode || testMode { fields.append(("o:testmode", "yes")) }
        fields += message.variables.sorted { $0.key < $1.key }.map { ("v:\($0.key)", $0.value) }
        fields += message.headers.sorted { $0.key < $1.key }.map { ("h:\($0.key)", $0.value) }
        if let messageID = message.messageID { fields.append(("h:Message-Id", messageID)) }
        if let variables = message.recipientVariables { fields.append(("recipient-variables", json(variables))) }
        return fields
    }

    /// `Name <address>`, the name quoted when it has characters RFC 5322 reserves.
    static func mailbox(_ address: String, name: String?) -> String {
        guard let name, !name.isEmpty else { return address }
        let plain = name.allSatisfy { $0.isLetter || $0.isNumber || $0 == " " || "!#$%&'*+-/=?^_`{|}~".contains($0) }
        let shown =
            plain
            ? name
            : "\""
                + name.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"") + "\""
        return "\(shown) <\(address)>"
    }

    /// The receipt for a 2xx, or the failure the status calls for.
    static func receipt(from response: OutboundResponse, now: Date = Date()) throws -> MailReceipt {
        let reply = try? JSONDecoder().decode(Reply.self, from: Data(response.body))
        let said = reply?.message ?? String(decoding: response.body.prefix(200), as: UTF8.self)
        switch response.status {
        case 200..<300:
            guard let id = reply?.id else {
                throw MailError.unavailable("mailgun \(response.status) without a message id: \(said)")
            }
            return MailReceipt(messageID: id)
        case 429:
            throw MailError.rateLimited(
                retryAfter: retryDelay(
                    reset: response.header("X-RateLimit-Reset"), retryAfter: response.header("Retry-After"), now: now),
                "mailgun 429: \(said)")
        case 400..<500:
            throw MailError.rejected("mailgun \(response.status): \(said)")
        default:
            throw MailError.unavailable("mailgun \(response.status): \(said)")
        }
    }

    /// How long to wait after a 429: until `X-RateLimit-Reset` (Unix time in ms or s, or seconds from now), else
    /// `Retry-After`, else a second; at least 1 s, at most an hour.
    static func retryDelay(reset: String?, retryAfter: String?, now: Date) -> Duration {
        var seconds = 1.0
        if let value = reset.flatMap(Double.init) {
            let nowSeconds = now.timeIntervalSince1970
            seconds =
                value > 1e12 ? value / 1000 - nowSeconds : value > 1e9 ? value - nowSeconds : value
        } else if let value = retryAfter.flatMap(Double.init) {
            seconds = value
        }
        return .milliseconds(Int(min(max(seconds, 1), 3600) * 1000))
    }

    private static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    private struct Reply: Decodable {
        var id: String?
        var message: String?
    }
}
