// What the logger and the metrics writer are asked for, in Firecracker's terms: the CLI
// (--log-path, --level, --metrics-path, …), PUT /logger, PUT /metrics and a config file's
// "logger" and "metrics" fill these in; the writers themselves read them from VMConfig.

/// The logger's configuration (Firecracker's Logger object; every field optional).
public struct LoggerConfig: Equatable {
    /// A file or named pipe the log lines go to.
    public var logPath: String?
    /// nil: the logger's default level.
    public var level: LogLevel?
    public var showLevel: Bool?
    public var showLogOrigin: Bool?
    /// Only messages from this module path.
    public var module: String?

    public init(logPath: String? = nil, level: LogLevel? = nil, showLevel: Bool? = nil,
                showLogOrigin: Bool? = nil, module: String? = nil) {
        self.logPath = logPath
        self.level = level
        self.showLevel = showLevel
        self.showLogOrigin = showLogOrigin
        self.module = module
    }

    /// `update` (a PUT /logger, a config file's "logger") applied to this configuration the
    /// way Firecracker's logger applies one: the fields it names replace these, the others
    /// stay, except the level, which goes back to the default when the update names none.
    public func updated(with update: LoggerConfig) -> LoggerConfig {
        LoggerConfig(logPath: update.logPath ?? logPath, level: update.level,
                     showLevel: update.showLevel ?? showLevel, showLogOrigin: update.showLogOrigin ?? showLogOrigin,
                     module: update.module ?? module)
    }
}

/// The metrics writer's configuration (Firecracker's Metrics object). Firecracker accepts
/// it once per process (CLI --metrics-path, PUT /metrics or the config file).
public struct MetricsConfig: Equatable {
    /// A file or named pipe the JSON lines go to.
    public var path: String
    /// Add the instance id to each line.
    public var emitID: Bool
    /// Operator-defined pairs added to each line.
    public var properties: [String: String]

    public init(path: String, emitID: Bool = false, properties: [String: String] = [:]) {
        self.path = path
        self.emitID = emitID
        self.properties = properties
    }
}
