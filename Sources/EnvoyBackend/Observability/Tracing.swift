import EnvoyFramework
import Logging
import OTel
import ServiceLifecycle
import Tracing

extension Backend {
    /// With an OTLP endpoint configured (`OTEL_EXPORTER_OTLP_ENDPOINT`), installs a tracer exporting spans over
    /// OTLP/HTTP (`http/protobuf`, or `http/json` by `OTEL_EXPORTER_OTLP_PROTOCOL`) as `serviceName`, and returns the
    /// service that batches and sends them: run it first in the service group, so that it stops last and flushes.
    /// Without one, nothing is installed and spans cost one atomic load. Call once, before building the backend.
    public static func startTracing(
        _ configuration: AppConfiguration, serviceName: String, logger: Logger
    ) throws -> (any Service)? {
        guard let endpoint = configuration.otlpTracesEndpoint else { return nil }
        var otel = OTel.Configuration.default
        otel.serviceName = serviceName
        otel.resourceAttributes["service.version"] = version
        otel.logs.enabled = false
        otel.metrics.enabled = false
        otel.traces.enabled = true
        otel.traces.otlpExporter.endpoint = endpoint
        otel.diagnosticLogger = .custom(logger)
        let tracing = try OTel.makeTracingBackend(configuration: otel)
        Traces.install(tracing.factory)
        logger.info("tracing on", metadata: ["otlp.endpoint": "\(endpoint)", "service.name": "\(serviceName)"])
        return tracing.service
    }
}
