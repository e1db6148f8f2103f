import EnvoyFramework
import EnvoyPlugins
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

struct HealthReport: Encodable {
    var status: String
    var components: [String: String]
}

extension Backend {
    /// `GET /health`, `GET /metrics`, and `document` at `GET /openapi.json` and `GET /docs` (never rate limited).
    func addSystemRoutes(to router: RouterGroup<EnvoyRequestContext>, document: OpenAPIDocument) {
        router.get("/health") { _, _ in
            let database = await database.ping() ? "ok" : "down"
            let queue = (try? await taskQueue.stats()) != nil ? "ok" : "down"
            var components: [String: String] = [:]
            let (redisStatus, masters) = await redisHealth()
            if let masters { components["redis_masters"] = masters }
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

        router.get("/metrics") { _, context in await metricsResponse(logger: context.logger) }

        let documentJSON = ByteBuffer(bytes: (try? document.encoded()) ?? [])
        let documentPage = ByteBuffer(string: DocsPage.render(document))
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: documentJSON))
        }
        router.get("/docs") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: documentPage))
        }
    }

    /// Redis as `/health` and the console say it: `ok`, `degraded` (some masters unreachable), `down` or `not
    /// configured`, and on a cluster `reachable/total` masters. Every master is asked at once.
    func redisHealth() async -> (status: String, masters: String?) {
        guard let redis else { return ("not configured", nil) }
        let masters = await redis.mastersReachable()
        let status = masters.reachable == masters.of ? "ok" : (masters.reachable == 0 ? "down" : "degraded")
        return (status, redis.isCluster ? "\(masters.reachable)/\(masters.of)" : nil)
    }

    /// Every metric in Prometheus' text format, the queue's and Redis' gauges read first.
    func metricsResponse(logger: Logger) async -> Response {
        do {
            queueGauges.record(try await taskQueue.stats())
        } catch {
            logger.warning("queue stats unavailable for /metrics", metadata: ["error": "\(error)"])
        }
        if let redis, let redisGauges { redisGauges.record(await redis.mastersReachable()) }
        processMetrics.update()
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: metricsRegistry.emitToBuffer())))
    }

    /// `envoy worker`'s own HTTP server on `port`: `GET /health` (200 while `worker` is claiming, else 503) and
    /// `GET /metrics` (the queue's and the tasks' metrics). A port it cannot bind is logged as an error and the
    /// worker goes on working: its tasks matter more than its metrics.
    public func workerApplication(_ worker: TaskWorker, port: Int) -> some Service {
        BestEffortService(workerServer(worker, port: port), logger: logger, what: "worker metrics on port \(port)")
    }

    func workerServer(_ worker: TaskWorker, port: Int) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.get("/health") { _, _ in
            let status = worker.status
            return try JSONResponse.make(
                WorkerHealth(
                    status: status.isClaiming ? "ok" : "not claiming", claiming: status.isClaiming,
                    workerID: worker.id, lanes: status.lanes, lanesBusy: status.lanesBusy, tasksDone: status.tasksDone),
                status: status.isClaiming ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, context in await metricsResponse(logger: context.logger) }
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: port), serverName: "envoy-worker"),
            logger: logger)
    }
}

/// Runs `base`; if it fails, logs why and waits for shutdown instead of stopping the service group.
struct BestEffortService<Base: Service>: Service {
    let base: Base
    let logger: Logger
    let what: String

    init(_ base: Base, logger: Logger, what: String) {
        self.base = base
        self.logger = logger
        self.what = what
    }

    func run() async throws {
        do {
            try await base.run()
        } catch {
            logger.error("\(what) failed; running without it", metadata: ["error": "\(error)"])
            try? await gracefulShutdown()
        }
    }
}

/// What a worker's `/health` says.
struct WorkerHealth: Encodable {
    var status: String
    var claiming: Bool
    var workerID: String
    var lanes: Int
    var lanesBusy: Int
    var tasksDone: Int
}
