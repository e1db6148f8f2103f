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
            var components: [String: String] = [:]
            var redisStatus = "not configured"
            if let redis {
                // Every master asked at once: a cluster with some masters unreachable is degraded, not down.
                let masters = await redis.mastersReachable()
                redisStatus = masters.reachable == masters.of ? "ok" : (masters.reachable == 0 ? "down" : "degraded")
                if redis.isCluster { components["redis_masters"] = "\(masters.reachable)/\(masters.of)" }
            }
            // Without its database an instance can serve nothing: 503, so a load balancer takes it out. A Redis
            // outage only degrades it (local limits, read-through cache, tasks kept in the outbox): still 200, or
            // every instance would leave rotation at once.
            let redisHealthy = redisStatus == "ok" || redisStatus == "not configured"
            let status = database != "ok" ? "unavailable" : (queue == "ok" && redisHealthy ? "ok" : "degraded")
            components["database"] = database
            components["redis"] = redisStatus
            components["queue"] = queue
            return try JSONResponse.make(
                HealthReport(status: status, components: components),
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
