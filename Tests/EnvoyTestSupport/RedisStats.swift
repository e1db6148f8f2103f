import EnvoyPlugins

extension RedisClient {
    /// The server's `total_reads_processed`: read events so far, this `INFO` call's own included. On a server no
    /// one else uses, the difference between two calls, less one, is the round trips made in between.
    public func readsProcessed() async throws -> Int {
        let info = try await send("INFO", "stats").string ?? ""
        let line = info.split(separator: "\r\n").first { $0.hasPrefix("total_reads_processed:") } ?? ""
        return Int(line.split(separator: ":").last ?? "") ?? -1
    }
}
