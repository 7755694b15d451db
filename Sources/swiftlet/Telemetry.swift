import API
import SwiftletCore
import VMM

/// The process's logger and metrics writer: configured from the command line, a config
/// file and the API (PUT /logger, PUT /metrics), driven by the main loop (the metrics'
/// period), and written out at exit; and the audit trail (--audit-log), if any.
final class Telemetry {
    let logger: Logger
    let metrics: Metrics
    private(set) var audit: AuditLog?

    /// At exit, how long each writer may wait for a stalled destination (a FIFO nobody
    /// reads) before what is left is counted as lost: the VMM must end all the same.
    static let finishMilliseconds = 500

    init(logger: Logger = .shared) {
        self.logger = logger
        metrics = Metrics(logger: logger)
    }

    /// Applies a logger configuration (the command line's with the config file's, or one
    /// PUT /logger): the path it names, if any, is opened first, and if it cannot be,
    /// nothing changes. Without a level it sets Info, as Firecracker's logger does: any
    /// configuration turns the logger on.
    func configure(_ config: LoggerConfig) throws(SwiftletError) {
        do {
            try logger.configure(path: config.logPath, level: config.level ?? .info, showLevel: config.showLevel,
                                 showOrigin: config.showLogOrigin, module: config.module)
        } catch {
            throw Telemetry.naming("logger", error)
        }
    }

    /// Sends the metrics to the configuration's path (the command line's, a config file's
    /// or PUT /metrics, once per process).
    func configure(_ config: MetricsConfig) throws(SwiftletError) {
        do {
            try metrics.configure(path: config.path)
        } catch {
            throw Telemetry.naming("metrics", error)
        }
    }

    /// Opens the audit trail (--audit-log, once, before the main thread's filter: its
    /// writer thread is started here).
    func openAudit(path: String) throws(SwiftletError) {
        do {
            audit = try AuditLog(path: path)
        } catch {
            throw Telemetry.naming("--audit-log", error)
        }
    }

    /// At exit: the last metrics line (Firecracker writes one as it stops), then both
    /// writers write out what is queued, each waiting a bounded time. Returns what was lost
    /// over the process's life.
    func finish() -> (logLines: UInt64, metricsLines: UInt64, auditLines: UInt64) {
        metrics.flush()
        let metricsLines = metrics.finish(milliseconds: Telemetry.finishMilliseconds)
        let auditLines = audit?.finish(milliseconds: Telemetry.finishMilliseconds) ?? 0
        return (logger.finish(milliseconds: Telemetry.finishMilliseconds), metricsLines, auditLines)
    }

    /// A bad path names the writer it was for (the same message serves the command line,
    /// the config file and the API).
    private static func naming(_ writer: String, _ error: SwiftletError) -> SwiftletError {
        guard case .invalidArgument(let message) = error else { return error }
        return .invalidArgument("\(writer): \(message)")
    }
}
