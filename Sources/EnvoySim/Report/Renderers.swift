import Foundation

extension Report {
    /// The verdict and the figures that matter, for a terminal.
    public func terminalSummary() -> String {
        var lines = ["\(scenario)\(quick ? " (quick)" : ""): \(verdict)"]
        if let invalidReason { lines.append("  invalid run: \(invalidReason)") }
        for phase in phases {
            guard let all = phase.requests["*"] else { continue }
            lines.append(
                "  \(phase.name): \(all.sent) sent at \(Report.number(all.achievedRps))/s (offered \(Report.number(phase.offeredRps))/s), "
                    + "p50 \(Report.number(all.p50Ms)) ms, p99 \(Report.number(all.p99Ms)) ms, max \(Report.number(all.maxMs)) ms, "
                    + "statuses \(Self.statusList(all.statuses))\(all.transportErrors > 0 ? ", \(all.transportErrors) no answer" : "")"
            )
        }
        let tasks = ["tasks_accepted", "tasks_delivered", "tasks_lost", "tasks_duplicated"].map {
            "\($0.dropFirst(6)) \(Report.number(figures[$0] ?? 0))"
        }
        lines.append("  tasks: " + tasks.joined(separator: ", "))
        lines.append("  rate limits: over-admission \(Report.number(figures["over_admission"] ?? 0))")
        for fault in faults {
            lines.append(
                "  fault \(fault.kind) at \(Report.number(fault.at)) s for \(Report.number(fault.duration)) s: \(fault.errors) failed requests, recovered \(Report.number(fault.recoveryS)) s after"
                    + (fault.error.map { " — NOT APPLIED: \($0)" } ?? ""))
        }
        for expectation in expectations {
            lines.append("  \(expectation.passed ? "✓" : "✗") \(expectation.summary)")
        }
        return lines.joined(separator: "\n")
    }

    /// PASS, FAIL or INVALID.
    public var verdict: String { !valid ? "INVALID" : passed ? "PASS" : "FAIL" }

    static func statusList(_ statuses: [String: Int]) -> String {
        statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
    }

    /// The report as Markdown: verdict, expectations, per-phase tables, tasks, rate limits, faults.
    public func markdown() -> String {
        var out = "# \(scenario): \(verdict)\n\n"
        if let description { out += "\(description)\n\n" }
        out += "Started \(startedAt)\(quick ? ", quick run" : ""); Redis \(stack.redisDescription), "
        out += "\(stack.instances) envoy serve instance(s), \(stack.workers) worker(s), \(stack.users) users.\n\n"
        if let invalidReason { out += "**Invalid run:** \(invalidReason)\n\n" }
        if !expectations.isEmpty {
            out += "## Expectations\n\n| | figure | actual | bound |\n|---|---|---|---|\n"
            for e in expectations {
                let scope = [e.phase, e.request].compactMap { $0 }.joined(separator: "/")
                let bound = [e.min.map { "≥ \(Report.number($0))" }, e.max.map { "≤ \(Report.number($0))" }]
                    .compactMap { $0 }.joined(separator: ", ")
                out += "| \(e.passed ? "✓" : "✗") | `\(e.metric)`\(scope.isEmpty ? "" : " (\(scope))") | "
                out += "\(e.actual.map(Report.number) ?? "n/a") | \(bound) |\n"
            }
            out += "\n"
        }
        out += "## Latency by phase and request\n\nLatency is measured from each request's intended send time "
        out += "(no coordinated omission); service time from the moment it was sent.\n\n"
        out +=
            "| phase | request | sent | rps | statuses | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | service p99 ms | cache hit |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for phase in phases {
            for (name, f) in phase.requests.sorted(by: { $0.key < $1.key }) {
                out +=
                    "| \(phase.name) | \(name == "*" ? "**all**" : name) | \(f.sent) | \(Report.number(f.achievedRps)) | "
                out += "\(Self.statusList(f.statuses))\(f.transportErrors > 0 ? " none×\(f.transportErrors)" : "") | "
                out += [f.p50Ms, f.p90Ms, f.p99Ms, f.p999Ms, f.maxMs, f.serviceP99Ms].map(Report.number)
                    .joined(separator: " | ")
                out += " | \(f.cacheHitRatio.map { Report.number($0 * 100) + " %" } ?? "") |\n"
            }
        }
        out += "\n## Run figures\n\n| figure | value |\n|---|---|\n"
        for (name, value) in figures.sorted(by: { $0.key < $1.key }) {
            out += "| `\(name)` | \(Report.number(value)) |\n"
        }
        out += "\n## Rate-limit policies\n\n| policy | limit | window s | checked |\n|---|---|---|---|\n"
        for policy in rateLimits {
            out +=
                "| \(policy.name) | \(policy.limit) | \(Report.number(policy.window)) | \(policy.checked ? "yes" : "no traffic") |\n"
        }
        if !faults.isEmpty {
            out += "\n## Faults\n\n| fault | at s | lasted s | first error after s | failed requests | recovery s |\n"
            out += "|---|---|---|---|---|---|\n"
            for f in faults {
                out += "| \(f.kind) | \(Report.number(f.at)) | \(Report.number(f.duration)) | "
                out +=
                    "\(f.firstErrorAfter.map(Report.number) ?? "none") | \(f.errors) | \(Report.number(f.recoveryS)) |"
                out += f.error.map { " not applied: \($0) |\n" } ?? "\n"
            }
        }
        return out
    }

    /// One self-contained HTML page: the Markdown's tables and three SVG charts (latency over time with fault
    /// markers, throughput over time, p99 per phase and request).
    public func html() -> String {
        let markers = faults.map { (x: $0.at, label: $0.kind) }
        let latency = SVGChart.lines(
            title: "Latency over time (ms, from intended send time)",
            series: [
                ("p99", "#d62728", timeline.map { (Double($0.t), $0.p99Ms) }),
                ("p50", "#1f77b4", timeline.map { (Double($0.t), $0.p50Ms) }),
            ], markers: markers, xLabel: "seconds")
        let throughput = SVGChart.lines(
            title: "Throughput (requests per second)",
            series: [
                ("sent", "#7f7f7f", timeline.map { (Double($0.t), Double($0.sent)) }),
                ("2xx", "#2ca02c", timeline.map { (Double($0.t), Double($0.ok)) }),
                ("errors", "#d62728", timeline.map { (Double($0.t), Double($0.errors)) }),
            ], markers: markers, xLabel: "seconds")
        let bars = SVGChart.bars(
            title: "p99 latency per phase and request (ms)",
            groups: phases.map { phase in
                (
                    phase.name,
                    phase.requests.filter { $0.key != "*" }.sorted { $0.key < $1.key }.map { ($0.key, $0.value.p99Ms) }
                )
            })
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(scenario)) — envoy sim</title>
            <style>
            body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
            table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
            td:first-child,th:first-child,td:nth-child(2){text-align:left}.PASS{color:#2ca02c}.FAIL,.INVALID{color:#d62728}
            svg{display:block;margin:1em 0;background:#fafafa;border:1px solid #eee}code{background:#f3f3f3;padding:0 3px}
            </style></head><body>
            <h1>\(Self.escape(scenario)): <span class="\(verdict)">\(verdict)</span></h1>
            \(latency)
            \(throughput)
            \(bars)
            \(Self.markdownTablesToHTML(markdown()))
            </body></html>
            """
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// The Markdown this report writes, as HTML (headings, paragraphs, tables, code and bold only).
    static func markdownTablesToHTML(_ markdown: String) -> String {
        var html = ""
        var inTable = false
        func inline(_ text: String) -> String {
            var escaped = escape(text)
            while let open = escaped.range(of: "`"), let close = escaped[open.upperBound...].range(of: "`") {
                escaped.replaceSubrange(
                    open.lowerBound..<close.upperBound,
                    with: "<code>\(escaped[open.upperBound..<close.lowerBound])</code>")
            }
            while let open = escaped.range(of: "**"), let close = escaped[open.upperBound...].range(of: "**") {
                escaped.replaceSubrange(
                    open.lowerBound..<close.upperBound, with: "<b>\(escaped[open.upperBound..<close.lowerBound])</b>")
            }
            return escaped
        }
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("|") {
                let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                if cells.allSatisfy({ $0.allSatisfy { $0 == "-" } }) { continue }
                if !inTable {
                    html += "<table><tr>" + cells.map { "<th>\(inline($0))</th>" }.joined() + "</tr>\n"
                    inTable = true
                } else {
                    html += "<tr>" + cells.map { "<td>\(inline($0))</td>" }.joined() + "</tr>\n"
                }
                continue
            }
            if inTable {
                html += "</table>\n"
                inTable = false
            }
            if line.hasPrefix("# ") { continue }  // the page has its own title
            if line.hasPrefix("## ") {
                html += "<h2>\(inline(String(line.dropFirst(3))))</h2>\n"
            } else if !line.isEmpty {
                html += "<p>\(inline(line))</p>\n"
            }
        }
        if inTable { html += "</table>\n" }
        return html
    }
}

/// Minimal SVG charts for the HTML report (no scripts, no external files).
enum SVGChart {
    static let width = 1000.0
    static let height = 260.0
    static let margin = (left: 60.0, right: 20.0, top: 30.0, bottom: 35.0)

    /// A line chart of `series` with vertical markers (faults).
    static func lines(
        title: String, series: [(name: String, color: String, points: [(Double, Double)])],
        markers: [(x: Double, label: String)], xLabel: String
    ) -> String {
        let all = series.flatMap(\.points)
        let maxX = max(1, all.map(\.0).max() ?? 1, markers.map(\.x).max() ?? 0)
        let maxY = niceCeiling(max(all.map(\.1).max() ?? 1, 0.001))
        let plotW = width - margin.left - margin.right
        let plotH = height - margin.top - margin.bottom
        func x(_ v: Double) -> Double { margin.left + v / maxX * plotW }
        func y(_ v: Double) -> Double { margin.top + plotH - v / maxY * plotH }
        var svg = header(title)
        svg += axes(maxY: maxY, maxX: maxX, xLabel: xLabel, x: x, y: y)
        for marker in markers {
            svg +=
                "<line x1=\"\(f(x(marker.x)))\" y1=\"\(f(margin.top))\" x2=\"\(f(x(marker.x)))\" y2=\"\(f(margin.top + plotH))\" stroke=\"#ff7f0e\" stroke-dasharray=\"4 3\"/>"
            svg +=
                "<text x=\"\(f(x(marker.x) + 3))\" y=\"\(f(margin.top + 12))\" font-size=\"11\" fill=\"#ff7f0e\">\(Report.escape(marker.label))</text>"
        }
        for (index, line) in series.enumerated() {
            let path = line.points.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"1.6\" points=\"\(path)\"/>"
            svg +=
                "<text x=\"\(f(width - margin.right - 70))\" y=\"\(f(margin.top + 14 + Double(index) * 14))\" font-size=\"12\" fill=\"\(line.color)\">\(Report.escape(line.name))</text>"
        }
        return svg + "</svg>"
    }

    /// Grouped bars: one group per phase, one bar per request.
    static func bars(title: String, groups: [(name: String, bars: [(String, Double)])]) -> String {
        let maxY = niceCeiling(max(groups.flatMap(\.bars).map(\.1).max() ?? 1, 0.001))
        let plotW = width - margin.left - margin.right
        let plotH = height - margin.top - margin.bottom
        let palette = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728"]
        var svg = header(title)
        svg += axes(maxY: maxY, maxX: nil, xLabel: "", x: { $0 }, y: { margin.top + plotH - $0 / maxY * plotH })
        let groupWidth = plotW / Double(max(groups.count, 1))
        for (g, group) in groups.enumerated() {
            let barWidth = (groupWidth * 0.8) / Double(max(group.bars.count, 1))
            for (b, bar) in group.bars.enumerated() {
                let left = margin.left + Double(g) * groupWidth + groupWidth * 0.1 + Double(b) * barWidth
                let h = bar.1 / maxY * plotH
                svg +=
                    "<rect x=\"\(f(left))\" y=\"\(f(margin.top + plotH - h))\" width=\"\(f(barWidth * 0.9))\" height=\"\(f(h))\" fill=\"\(palette[b % palette.count])\"><title>\(Report.escape(group.name)) / \(Report.escape(bar.0)): \(Report.number(bar.1)) ms</title></rect>"
                if barWidth > 40 {
                    svg +=
                        "<text x=\"\(f(left + 2))\" y=\"\(f(margin.top + plotH - h - 3))\" font-size=\"10\">\(Report.escape(bar.0))</text>"
                }
            }
            svg +=
                "<text x=\"\(f(margin.left + Double(g) * groupWidth + groupWidth / 2))\" y=\"\(f(height - 10))\" font-size=\"12\" text-anchor=\"middle\">\(Report.escape(group.name))</text>"
        }
        return svg + "</svg>"
    }

    private static func header(_ title: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
            + "<text x=\"\(f(margin.left))\" y=\"18\" font-size=\"14\" font-weight=\"bold\">\(Report.escape(title))</text>"
    }

    private static func axes(
        maxY: Double, maxX: Double?, xLabel: String, x: (Double) -> Double, y: (Double) -> Double
    ) -> String {
        var svg = ""
        for step in 0...4 {
            let value = maxY * Double(step) / 4
            svg +=
                "<line x1=\"\(f(margin.left))\" y1=\"\(f(y(value)))\" x2=\"\(f(width - margin.right))\" y2=\"\(f(y(value)))\" stroke=\"#e5e5e5\"/>"
            svg +=
                "<text x=\"\(f(margin.left - 6))\" y=\"\(f(y(value) + 4))\" font-size=\"11\" text-anchor=\"end\">\(Report.number(value))</text>"
        }
        if let maxX {
            for step in 0...5 {
                let value = maxX * Double(step) / 5
                svg +=
                    "<text x=\"\(f(x(value)))\" y=\"\(f(height - margin.bottom + 15))\" font-size=\"11\" text-anchor=\"middle\">\(Report.number(value.rounded()))</text>"
            }
            svg +=
                "<text x=\"\(f(width - margin.right))\" y=\"\(f(height - 4))\" font-size=\"11\" text-anchor=\"end\">\(Report.escape(xLabel))</text>"
        }
        return svg
    }

    /// 1, 2 or 5 times a power of ten at or above `value`.
    static func niceCeiling(_ value: Double) -> Double {
        let power = pow(10, floor(log10(value)))
        for factor in [1.0, 2.0, 5.0, 10.0] where factor * power >= value { return factor * power }
        return 10 * power
    }

    private static func f(_ value: Double) -> String { String(format: "%.1f", value) }
}
