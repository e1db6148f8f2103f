import Hummingbird
import Logging

// A bare Hummingbird route, built like `envoy` (same package, same configuration), as the ceiling Envoy's
// request path is compared with (Benchmarks/profile.sh). PORT from the environment, default 8089.
var logger = Logger(label: "hello")
logger.logLevel = .error
let router = Router()
router.get("/") { _, _ in "hello" }
let port = Int(Environment().get("PORT") ?? "") ?? 8089
let app = Application(
    router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "hello"),
    logger: logger)
try await app.runService()
