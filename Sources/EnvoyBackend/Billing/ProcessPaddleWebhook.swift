import EnvoyFramework
import EnvoyPlugins
import Foundation
import Logging
import Metrics

/// The `process_paddle_webhook` task: applies a verified Paddle event once (subscriptions and plans, payments,
/// customer links), then invalidates affected profiles and queues the email the event calls for.
public struct ProcessPaddleWebhook: TaskHandler {
    /// The webhook body exactly as verified.
    public struct Payload: Codable, Sendable, Equatable {
        /// The raw JSON event.
        public var body: String

        /// A payload carrying `body`.
        public init(body: String) {
            self.body = body
        }
    }

    /// `process_paddle_webhook`.
    public static let taskType = "process_paddle_webhook"
    /// `payments`.
    public static let queue = "payments"

    let store: BillingStore
    let paddle: PaddleClient?
    let emails: EmailQueue
    let profiles: ScopedCache<UserProfile>
    let metrics: any MetricsFactory

    /// A handler applying events to `store`, looking unknown customers up with `paddle` when configured.
    public init(
        store: BillingStore, paddle: PaddleClient?, emails: EmailQueue, profiles: ScopedCache<UserProfile>,
        metrics: any MetricsFactory
    ) {
        self.store = store
        self.paddle = paddle
        self.emails = emails
        self.profiles = profiles
        self.metrics = metrics
    }

    /// Applies the event, then its follow-ups (which a re-run repeats harmlessly: invalidation is idempotent and
    /// each email carries a deduplication key made from the event id).
    public func handle(_ payload: Payload, context: TaskContext) async throws {
        guard let event = PaddleEvent(json: Array(payload.body.utf8)) else {
            throw TaskFailure.permanent("not a Paddle event envelope")
        }
        let outcome = try await apply(event)
        for userID in outcome.invalidateUsers { await profiles.invalidate(scope: userID) }
        for (index, email) in outcome.emails.enumerated() {
            try await emails.send(email, deduplicationKey: "paddle-email:\(event.id):\(index)")
        }
        Counter(
            label: "envoy_paddle_events_total", dimensions: [("type", event.type), ("result", outcome.result)],
            factory: metrics
        ).increment()
        context.logger.info(
            "paddle event processed",
            metadata: [
                "paddle.event_id": "\(event.id)", "paddle.event_type": "\(event.type)",
                "paddle.result": "\(outcome.result)",
            ])
    }

    /// The event's effect, recorded with it in one transaction.
    func apply(_ event: PaddleEvent) async throws -> BillingOutcome {
        let store = self.store
        switch event.type {
        case let type where type.hasPrefix("subscription."):
            let subscription = try decode(PaddleSubscription.self, event)
            let userID = try await owner(customData: subscription.customData, customerID: subscription.customerID)
            return try await store.once(event) { db in
                let userID = try await store.user(db, known: userID, customerID: subscription.customerID)
                let applied = try await store.applySubscription(
                    db, subscription, userID: userID, occurredAt: event.occurredAt)
                if applied.stale { return .of("stale") }
                guard let change = applied.change, let contact = try await store.contact(db, userID: change.userID)
                else {
                    return .of("applied")
                }
                var data = [
                    "name": contact.name, "old_plan": change.from, "new_plan": change.to, "status": subscription.status,
                ]
                data["next_billing_date"] = subscription.nextBilledAt.flatMap(PaddleTime.parse).map(Self.day)
                let email = SendEmail.Payload(to: [contact.email], template: "subscription_changed", templateData: data)
                return .of("applied", invalidate: [change.userID], emails: [email])
            }
        case "transaction.completed", "transaction.payment_failed":
            let transaction = try decode(PaddleTransaction.self, event)
            let userID = try await owner(customData: transaction.customData, customerID: transaction.customerID)
            let completed = event.type == "transaction.completed"
            return try await store.once(event) { db in
                let userID = try await store.user(db, known: userID, customerID: transaction.customerID)
                try await store.recordPayment(
                    db, transaction, eventID: event.id, kind: completed ? "completed" : "payment_failed",
                    userID: userID,
                    occurredAt: event.occurredAt)
                guard let userID, let contact = try await store.contact(db, userID: userID) else {
                    return .of("applied")
                }
                let plan: String
                if let price = transaction.items?.first?.price.id {
                    plan = store.plan(status: "active", priceID: price)
                } else {
                    plan = try await store.subscriptionPlan(db, userID: userID) ?? "free"
                }
                var data = [
                    "name": contact.name, "amount": transaction.formattedAmount, "currency": transaction.currencyCode,
                    "plan": plan,
                ]
                if completed {
                    data["transaction_id"] = transaction.id
                    data["paid_at"] = Self.day(event.occurredAt)
                }
                let email = SendEmail.Payload(
                    to: [contact.email], template: completed ? "payment_receipt" : "payment_failed", templateData: data)
                return .of("applied", emails: [email])
            }
        case "customer.created", "customer.updated":
            let customer = try decode(PaddleCustomer.self, event)
            return try await store.once(event) { db in
                let applied = try await store.applyCustomer(db, customer, occurredAt: event.occurredAt)
                if applied.stale { return .of("stale") }
                return .of("applied", invalidate: applied.change.map { [$0.userID] } ?? [])
            }
        default:
            return try await store.once(event) { _ in .of("ignored") }
        }
    }

    /// The user an entity belongs to; an unknown customer is looked up at Paddle (when `PADDLE_API_KEY` is set)
    /// and linked by email. A Paddle outage fails the task, which retries; a customer Paddle does not know leaves
    /// the entity unlinked until a `customer.*` event links it.
    private func owner(customData: [String: JSONScalar]?, customerID: String?) async throws -> String? {
        if let userID = try await store.user(customData: customData, customerID: customerID) { return userID }
        guard let customerID, let paddle, try await !store.knowsCustomer(customerID) else { return nil }
        do {
            let customer = try await paddle.customer(id: customerID)
            try await store.link(customer)
        } catch let error as PaddleAPIError where !error.isTransient {
            return nil
        }
        return try await store.user(customData: nil, customerID: customerID)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ event: PaddleEvent) throws -> T {
        do {
            return try event.decode(T.self)
        } catch {
            throw TaskFailure.permanent("\(event.type) \(event.id): data is not a \(T.self): \(error)")
        }
    }

    /// `2026-12-01`.
    static func day(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle().year().month().day())
    }
}
