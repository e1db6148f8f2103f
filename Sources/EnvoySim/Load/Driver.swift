import EnvoyBackend
import EnvoyFramework
import EnvoyPlugins
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// A user the run registered and logged in before the load.
public struct SimUser: Sendable {
    /// The user's id.
    public var id: String
    /// Their email.
    public var email: String
    /// Their access token.
    public var token: String
    /// The client address their requests come from (sent as `X-Forwarded-For`; the sim is a trusted proxy).
    public var ip: String
    /// When their registration was answered (their welcome email is due from then).
    public var registeredAt: Date
}

/// What the run handed to the stack that must come out the other end: emails and Paddle events.
struct Accounting {
    /// Address → when the email for it was accepted (a 201 register, a queued bulk email).
    var expectedEmails: [String: Date] = [:]
    /// Paddle events answered 200 as new.
    var acceptedEvents: Set<String> = []
    /// Forged webhooks the server accepted (must stay 0).
    var forgeriesAccepted = 0
    /// Forged webhooks sent.
    var forgeriesSent = 0
}

/// Turns arrivals into real requests against the stack and reports what each did.
final class Driver: Sendable {
    let scenario: Scenario
    let stack: SimStack
    /// Where the requests go out (set-up calls use the simulator's AsyncHTTPClient).
    let load = LoadClient()
    let users: [SimUser]
    let policies: [RateLimitPolicy]
    let limits: [(policy: RateLimitPolicy, name: String)]
    let emails: EmailQueue?
    let sequence = Atomic<Int>(0)
    let sentEvents = Mutex<[[UInt8]]>([])
    let accounting = Mutex(Accounting())

    init(
        scenario: Scenario, stack: SimStack, users: [SimUser], policies: [RateLimitPolicy],
        emails: EmailQueue?
    ) {
        self.scenario = scenario
        self.stack = stack
        self.users = users
        self.policies = policies
        self.limits = policies.filter { $0.algorithm == .slidingLog && !$0.shadow }.map { ($0, $0.name) }
        self.emails = emails
    }

    deinit {
        load.shutdown()
    }

    /// Sends the request `arrival` names, now; `origin` is the run's time zero.
    func execute(_ arrival: Arrival, origin: ContinuousClock.Instant) async -> Outcome {
        let request = scenario.requests[arrival.request]!
        let seq = sequence.add(1, ordering: .relaxed).newValue
        let sentAt = (ContinuousClock.now - origin).inSeconds
        var outcome = Outcome(arrival: arrival, sentAt: sentAt, doneAt: sentAt, status: nil, cache: nil)
        switch request.kind {
        case "paddle_webhook":
            outcome.status = await webhook(request, seq: seq)
        case "bulk_email":
            outcome.status = await bulkEmail(request, seq: seq)
        default:
            (outcome.status, outcome.cache, outcome.limitKeys) = await http(request, seq: seq)
        }
        outcome.doneAt = (ContinuousClock.now - origin).inSeconds
        return outcome
    }

    private func http(_ request: Scenario.Request, seq: Int) async -> (Int?, String?, [String]) {
        let user = request.auth == "user" ? users.randomElement() : nil
        let ip = request.clientIP ?? user?.ip ?? "198.18.\(seq / 256 % 256).\(seq % 256)"
        let fill = { (text: String) in Self.fill(text, seq: seq, user: user) }
        var headers = [("X-Forwarded-For", ip)]
        if let user { headers.append(("Authorization", "Bearer \(user.token)")) }
        var email: String?
        var payload: ByteBuffer?
        if let body = request.body?.mapStrings(fill), let data = try? JSONEncoder().encode(body) {
            headers.append(("Content-Type", "application/json"))
            payload = ByteBuffer(bytes: data)
            if case .object(let fields) = body, case .string(let address)? = fields["email"] { email = address }
        }
        let route = request.route ?? request.path
        let keys = limits.compactMap { policy, name -> String? in
            guard policy.match.matches(method: request.method, route: route, authenticated: user != nil) else {
                return nil
            }
            switch policy.key {
            case .user: return user.map { "\(name)\u{1F}user:\($0.id)" }
            case .clientIP: return IPAddress(ip).map { "\(name)\u{1F}ip:\($0.rateLimitKey)" }
            case .global: return "\(name)\u{1F}global"
            case .header: return nil  // the sim sends no such header
            }
        }
        do {
            let response = try await load.send(
                HTTPMethod(rawValue: request.method), stack.nextBaseURL(), fill(request.path), headers: headers,
                body: payload)
            let status = response.status
            if status == 201, request.path == "/v1/auth/register", let email {
                accounting.withLock { $0.expectedEmails[email.lowercased()] = Date() }
            }
            return (status, response.headers.first(name: "X-Cache"), keys)
        } catch {
            return (nil, nil, keys)
        }
    }

    private func webhook(_ request: Scenario.Request, seq: Int) async -> Int? {
        var random = SystemRandomNumberGenerator()
        let forged = Double.random(in: 0..<1, using: &random) < request.forgedRatio
        let repeated =
            !forged && Double.random(in: 0..<1, using: &random) < request.duplicateRatio
            ? sentEvents.withLock { $0.randomElement() } : nil
        let body = repeated ?? Self.event(type: request.eventType ?? "transaction.completed", seq: seq)
        let secret = forged ? "forged-\(seq)" : stack.paddle.webhookSecret
        let headers = [
            ("Content-Type", "application/json"),
            ("Paddle-Signature", PaddleSignature.header(body: body, secret: secret)),
        ]
        do {
            let response = try await load.send(
                .POST, stack.nextBaseURL(), request.path, headers: headers, body: ByteBuffer(bytes: body))
            let answer = response.body
            let status = response.status
            let ok = (200..<300).contains(status)
            if forged {
                accounting.withLock {
                    $0.forgeriesSent += 1
                    if ok { $0.forgeriesAccepted += 1 }
                }
            } else if ok {
                if repeated == nil { sentEvents.withLock { $0.append(body) } }
                let reply = try? JSONSerialization.jsonObject(with: Data(answer.readableBytesView)) as? [String: Any]
                if reply?["duplicate"] as? Bool == false, let id = reply?["event_id"] as? String {
                    accounting.withLock { _ = $0.acceptedEvents.insert(id) }
                }
            }
            return status
        } catch {
            return nil
        }
    }

    private func bulkEmail(_ request: Scenario.Request, seq: Int) async -> Int? {
        guard let emails else { return nil }
        let recipients = (0..<request.recipients).map {
            SendBulkEmail.Recipient(address: "bulk\(seq)-\($0)@sim.envoy.test", variables: ["n": "\($0)"])
        }
        do {
            try await emails.sendBulk(
                .init(
                    recipients: recipients,
                    content: EmailContent(subject: "Sim bulk \(seq)", body: "Hello recipient %recipient.n%")))
            let now = Date()
            accounting.withLock { accounting in
                for recipient in recipients { accounting.expectedEmails[recipient.address] = now }
            }
            return 202
        } catch {
            return nil
        }
    }

    /// A Paddle event body of `type` for an entity Envoy does not know (no user, so no email follows).
    static func event(type: String, seq: Int) -> [UInt8] {
        let data: [String: Any] =
            if type.hasPrefix("subscription.") {
                MockPaddle.subscription(
                    id: "sub_sim_\(seq)", customerID: "ctm_sim_\(seq)", status: "active", priceID: "pri_sim")
            } else if type.hasPrefix("customer.") {
                MockPaddle.customer(id: "ctm_sim_\(seq)", email: "paddle\(seq)@sim.envoy.test")
            } else {
                MockPaddle.transaction(
                    id: "txn_sim_\(seq)", customerID: "ctm_sim_\(seq)", subscriptionID: nil, status: "completed",
                    priceID: "pri_sim", amount: 1000 + seq % 1000)
            }
        return MockPaddle.event(id: "evt_sim_\(seq)", type: type, occurredAt: Date(), data: data)
    }

    /// Fills `{{seq}}`, `{{user.id}}`, `{{user.email}}` and `{{rand}}`.
    static func fill(_ text: String, seq: Int, user: SimUser?) -> String {
        guard text.contains("{{") else { return text }
        return text.replacingOccurrences(of: "{{seq}}", with: "\(seq)")
            .replacingOccurrences(of: "{{user.id}}", with: user?.id ?? "")
            .replacingOccurrences(of: "{{user.email}}", with: user?.email ?? "")
            .replacingOccurrences(of: "{{rand}}", with: "\(UInt32.random(in: 0...UInt32.max))")
    }
}
