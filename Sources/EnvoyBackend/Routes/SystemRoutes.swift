import EnvoyFramework
import EnvoyPlugins
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Prometheus

struct HealthReport: Encodable {
    var status: String
    var components: [String: String]
}

extension Backend {
    /// `GET /health` and `GET /metrics` (never rate limited).
    func addSystemRoutes(to router: RouterGroup<EnvoyRequestContext>) {
        router.get("/health") { _, _ in
            let database = await database.ping() ? "ok" : "down"
            let queue = (try? await taskQueue.stats()) != nil ? "ok" : "down"
            var redisStatus = "not configured"
            if let redis { redisStatus = await redis.ping() ? "ok" : "down" }
            // Without its database an instance can serve nothing: 503, so a load balancer takes it out. A Redis
            // outage only degrades it (local limits, read-through cache, tasks kept in the outbox): still 200, or
            // every instance would leave rotation at once.
            let status = database != "ok" ? "unavailable" : (queue == "ok" && redisStatus != "down" ? "ok" : "degraded")
            return try JSONResponse.make(
                HealthReport(status: status, components: ["database": database, "redis": redisStatus, "queue": queue]),
                status: database == "ok" ? .ok : .serviceUnavailable)
        }

        router.get("/metrics") { _, context in
            do {
                queueGauges.record(try await taskQueue.stats())
            } catch {
                context.logger.warning("queue stats unavailable for /metrics", metadata: ["error": "\(error)"])
            }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metricsRegistry.emitToBuffer())))
        }
    }
}
