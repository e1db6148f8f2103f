import EnvoyFramework
import EnvoyPlugins
import Foundation

/// What applying one Paddle event did, and what must follow it (cache invalidation, email). Follow-ups are stored
/// with the event, so a re-run after a crash re-issues them (idempotently) instead of losing them.
public struct BillingOutcome: Codable, Sendable, Equatable {
    /// `applied` (state changed or recorded), `stale` (older than the stored state), `ignored` (a type Envoy does
    /// not act on), `duplicate` (this event was processed before; `followUps` are the first run's).
    public var result: String
    /// Users whose cached profile must be invalidated.
    public var invalidateUsers: [String]
    /// Email to queue, each deduplicated by the event.
    public var emails: [SendEmail.Payload]

    static func of(_ result: String, invalidate users: [String] = [], emails: [SendEmail.Payload] = []) -> Self {
        BillingOutcome(result: result, invalidateUsers: users, emails: emails)
    }
}

/// Subscriptions, payments, Paddle customers and processed events, in the application's database. Every event is
/// applied in one transaction together with its `paddle_events` row, so it takes effect exactly once.
public struct BillingStore: Sendable {
    let database: any SQLDatabase
    /// `PADDLE_PRICE_ID_*` → plan.
    let pricePlans: [String: String]

    /// A store over `database`, mapping prices to plans with `pricePlans`.
    public init(database: any SQLDatabase, pricePlans: [String: String]) {
        self.database = database
        self.pricePlans = pricePlans
    }

    /// The plan a subscription in `status` on `priceID` grants: the price's plan while it is active, trialing or
    /// past due (Paddle still retries), `free` once paused or canceled, or for an unknown price.
    public func plan(status: String, priceID: String?) -> String {
        guard ["active", "trialing", "past_due"].contains(status), let priceID else { return "free" }
        return pricePlans[priceID] ?? "free"
    }

    /// The user a Paddle entity belongs to: `custom_data.user_id` naming an existing user, else the user linked to
    /// the customer; nil when neither is known.
    public func user(customData: [String: JSONScalar]?, customerID: String?) async throws -> String? {
        if let id = customData?["user_id"]?.text, try await database.row("SELECT 1 FROM users WHERE id = ?", id) != nil
        {
            return id
        }
        return try await user(database, known: nil, customerID: customerID)
    }

    /// `known`, else the user linked to `customerID`, read inside an event's transaction: `user(customData:…)`
    /// looked before the transaction, and a `customer.*` event may have linked the customer since.
    func user(_ db: any SQLExecutor, known: String?, customerID: String?) async throws -> String? {
        if let known { return known }
        guard let customerID else { return nil }
        return try await db.value(
            String.self, "SELECT user_id FROM paddle_customers WHERE customer_id = ?", customerID)
    }

    /// Whether `customerID` is already known (linked or not).
    public func knowsCustomer(_ customerID: String) async throws -> Bool {
        try await database.row("SELECT 1 FROM paddle_customers WHERE customer_id = ?", customerID) != nil
    }

    /// Applies `event` once: inside `body`'s transaction, unless the event was processed before (then the first
    /// run's outcome comes back with `result` `duplicate`).
    public func once(_ event: PaddleEvent, _ body: (any SQLExecutor) async throws -> BillingOutcome)
        async throws -> BillingOutcome
    {
        try await database.transaction { db in
            // SQLite runs one write transaction at a time; on PostgreSQL events take turns under an advisory lock,
            // so that a customer link and its subscription, applied concurrently, each see the other's result.
            if database.dialect == .postgres { try await db.query("SELECT pg_advisory_xact_lock(7001843022)") }
            if let stored = try await db.value(
                String.self, "SELECT outcome FROM paddle_events WHERE event_id = ?", event.id)
            {
                var outcome = try JSONDecoder().decode(BillingOutcome.self, from: Data(stored.utf8))
                outcome.result = "duplicate"
                return outcome
            }
            let outcome = try await body(db)
            // On PostgreSQL a concurrent run of the same event fails here on the key and rolls back; its retry
            // then finds this run's outcome.
            try await db.query(
                """
                INSERT INTO paddle_events (event_id, event_type, occurred_at, processed_at, outcome)
                VALUES (?, ?, ?, ?, ?)
                """,
                event.id, event.type, event.occurredAt.timeIntervalSince1970, Timestamp.now(),
                String(decoding: try JSONEncoder().encode(outcome), as: UTF8.self))
            return outcome
        }
    }

    /// Upserts a subscription from an event at `occurredAt`; a stale event (older than the stored state) changes
    /// nothing. Returns the user whose plan changed, with the old and new plan.
    func applySubscription(
        _ db: any SQLExecutor, _ subscription: PaddleSubscription, userID: String?, occurredAt: Date
    ) async throws -> (stale: Bool, change: (userID: String, from: String, to: String)?) {
        if let stored = try await db.value(
            Double.self, "SELECT occurred_at FROM subscriptions WHERE id = ?", subscription.id),
            stored >= occurredAt.timeIntervalSince1970
        {
            return (true, nil)
        }
        let priceID = subscription.items.first?.price.id
        let plan = plan(status: subscription.status, priceID: priceID)
        let owner = try await db.value(
            String.self,
            """
            INSERT INTO subscriptions (id, customer_id, user_id, status, price_id, plan, next_billed_at, occurred_at,
                updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id,
                user_id = COALESCE(excluded.user_id, subscriptions.user_id), status = excluded.status,
                price_id = excluded.price_id, plan = excluded.plan, next_billed_at = excluded.next_billed_at,
                occurred_at = excluded.occurred_at, updated_at = excluded.updated_at
            RETURNING user_id
            """,
            subscription.id, subscription.customerID, userID, subscription.status, priceID, plan,
            subscription.nextBilledAt, occurredAt.timeIntervalSince1970, Timestamp.now())
        guard let owner else { return (false, nil) }
        return (false, try await setPlan(db, userID: owner, plan: plan))
    }

    /// Links `customer` to the user with its email (if any) and gives that user the plan of the customer's newest
    /// subscription that arrived before the link. Stale updates (older than the stored link) change nothing.
    func applyCustomer(_ db: any SQLExecutor, _ customer: PaddleCustomer, occurredAt: Date) async throws
        -> (stale: Bool, userID: String?, change: (userID: String, from: String, to: String)?)
    {
        if let stored = try await db.value(
            Double.self, "SELECT occurred_at FROM paddle_customers WHERE customer_id = ?", customer.id),
            stored >= occurredAt.timeIntervalSince1970
        {
            return (true, nil, nil)
        }
        let userID = try await db.value(
            String.self, "SELECT id FROM users WHERE \(database.dialect.equalsIgnoringCase("email"))", customer.email)
        try await db.query(
            """
            INSERT INTO paddle_customers (customer_id, user_id, email, occurred_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (customer_id) DO UPDATE SET user_id = excluded.user_id, email = excluded.email,
                occurred_at = excluded.occurred_at
            """,
            customer.id, userID, customer.email, occurredAt.timeIntervalSince1970)
        guard let userID else { return (false, nil, nil) }
        try await db.query(
            "UPDATE subscriptions SET user_id = ? WHERE customer_id = ? AND user_id IS NULL", userID, customer.id)
        guard
            let plan = try await db.value(
                String.self, "SELECT plan FROM subscriptions WHERE customer_id = ? ORDER BY occurred_at DESC LIMIT 1",
                customer.id)
        else { return (false, userID, nil) }
        return (false, userID, try await setPlan(db, userID: userID, plan: plan))
    }

    /// Links a customer looked up at Paddle to the user with its email, unless a `customer.*` event already did
    /// (stored at the earliest time, so any such event later overrides it).
    public func link(_ customer: PaddleCustomer) async throws {
        try await database.query(
            """
            INSERT INTO paddle_customers (customer_id, user_id, email, occurred_at)
            VALUES (?, (SELECT id FROM users WHERE \(database.dialect.equalsIgnoringCase("email"))), ?, 0)
            ON CONFLICT (customer_id) DO NOTHING
            """,
            customer.id, customer.email, customer.email)
    }

    /// Records a payment (completed or failed) once per event.
    func recordPayment(
        _ db: any SQLExecutor, _ transaction: PaddleTransaction, eventID: String, kind: String, userID: String?,
        occurredAt: Date
    ) async throws {
        try await db.query(
            """
            INSERT INTO payments (event_id, transaction_id, kind, status, user_id, customer_id, subscription_id,
                amount, currency, occurred_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            eventID, transaction.id, kind, transaction.status, userID, transaction.customerID,
            transaction.subscriptionID, transaction.formattedAmount, transaction.currencyCode,
            occurredAt.timeIntervalSince1970)
    }

    /// The user's email and name, for the email a payment event sends.
    func contact(_ db: any SQLExecutor, userID: String) async throws -> (email: String, name: String)? {
        try await db.row("SELECT email, name FROM users WHERE id = ?", userID).map {
            (try $0["email"], try $0["name"])
        }
    }

    /// The plan of `userID`'s current subscription, if any.
    func subscriptionPlan(_ db: any SQLExecutor, userID: String) async throws -> String? {
        try await db.value(
            String.self, "SELECT plan FROM subscriptions WHERE user_id = ? ORDER BY occurred_at DESC LIMIT 1", userID)
    }

    private func setPlan(_ db: any SQLExecutor, userID: String, plan: String) async throws -> (
        userID: String, from: String, to: String
    )? {
        guard let current = try await db.value(String.self, "SELECT plan FROM users WHERE id = ?", userID),
            current != plan
        else { return nil }
        try await db.query("UPDATE users SET plan = ?, updated_at = ? WHERE id = ?", plan, Timestamp.now(), userID)
        return (userID, current, plan)
    }

    /// Counts, for tests, the simulator and operators: processed events, payments, subscriptions.
    public func counts() async throws -> (events: Int, payments: Int, subscriptions: Int) {
        (
            try await database.value(Int.self, "SELECT COUNT(*) FROM paddle_events") ?? 0,
            try await database.value(Int.self, "SELECT COUNT(*) FROM payments") ?? 0,
            try await database.value(Int.self, "SELECT COUNT(*) FROM subscriptions") ?? 0
        )
    }

    /// The billing tables.
    static let migrations = [
        SQLMigration("billing_v1") { sql in
            [
                """
                CREATE TABLE paddle_events (
                    event_id TEXT PRIMARY KEY NOT NULL,
                    event_type TEXT NOT NULL,
                    occurred_at \(sql.real) NOT NULL,
                    processed_at TEXT NOT NULL,
                    outcome TEXT NOT NULL
                )
                """,
                """
                CREATE TABLE paddle_customers (
                    customer_id TEXT PRIMARY KEY NOT NULL,
                    user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
                    email TEXT NOT NULL,
                    occurred_at \(sql.real) NOT NULL
                )
                """,
                """
                CREATE TABLE subscriptions (
                    id TEXT PRIMARY KEY NOT NULL,
                    customer_id TEXT NOT NULL,
                    user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
                    status TEXT NOT NULL,
                    price_id TEXT,
                    plan TEXT NOT NULL,
                    next_billed_at TEXT,
                    occurred_at \(sql.real) NOT NULL,
                    updated_at TEXT NOT NULL
                )
                """,
                "CREATE INDEX subscriptions_by_customer ON subscriptions (customer_id)",
                "CREATE INDEX subscriptions_by_user ON subscriptions (user_id)",
                """
                CREATE TABLE payments (
                    event_id TEXT PRIMARY KEY NOT NULL,
                    transaction_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    status TEXT NOT NULL,
                    user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
                    customer_id TEXT,
                    subscription_id TEXT,
                    amount TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    occurred_at \(sql.real) NOT NULL
                )
                """,
            ]
        }
    ]
}
