import SwiftletCore

/// Firecracker's Logger object (PUT /logger, a config file's "logger"):
///
///   {"log_path"?: PATH, "level"?: "Error"|"Warning"|"Info"|"Debug"|"Trace"|"Off",
///    "show_level"?: BOOL, "show_log_origin"?: BOOL, "module"?: STRING}
///
/// Every field is optional and may be null; the level is read as Firecracker reads it (any
/// case, "Warn" too). Unknown fields answer 400, as Firecracker's do.
public enum LoggerJSON {
    public static func parse(_ members: [(String, JSONValue)]) throws(APIError) -> LoggerConfig {
        var logger = LoggerConfig()
        for (name, value) in members where value != .null {
            switch name {
            case "log_path": logger.logPath = try APIRouter.path(value, field: name)
            case "level":
                let text = try APIRouter.string(value, field: name)
                guard let level = LogLevel(text) else {
                    throw .badRequest("level must be \(LogLevel.accepted), got \"\(printable(text))\"")
                }
                logger.level = level
            case "show_level": logger.showLevel = try APIRouter.boolean(value, field: name)
            case "show_log_origin": logger.showLogOrigin = try APIRouter.boolean(value, field: name)
            case "module": logger.module = try APIRouter.path(value, field: name)
            default: throw APIRouter.unknownField(name, in: "logger")
            }
        }
        return logger
    }
}

/// Firecracker's Metrics object (PUT /metrics, a config file's "metrics"):
///
///   {"metrics_path": PATH, "emit_id"?: BOOL, "properties"?: {STRING: STRING, …}}
public enum MetricsJSON {
    /// At most this many properties, each name and value at most `maxPropertyBytes`: they
    /// are repeated on every metrics line.
    public static let maxProperties = 64
    public static let maxPropertyBytes = 256

    public static func parse(_ members: [(String, JSONValue)]) throws(APIError) -> MetricsConfig {
        var path: String?, emitID = false
        var properties: [String: String] = [:]
        for (name, value) in members {
            switch name {
            case "metrics_path": path = try APIRouter.path(value, field: name)
            case "emit_id": if value != .null { emitID = try APIRouter.boolean(value, field: name) }
            case "properties": if value != .null { properties = try parseProperties(value) }
            default: throw APIRouter.unknownField(name, in: "metrics")
            }
        }
        guard let path else { throw .badRequest("missing required field \"metrics_path\"") }
        return MetricsConfig(path: path, emitID: emitID, properties: properties)
    }

    private static func parseProperties(_ value: JSONValue) throws(APIError) -> [String: String] {
        let members = try APIRouter.members(of: value, what: "properties")
        guard members.count <= maxProperties else {
            throw .badRequest("properties: at most \(maxProperties) are allowed, got \(members.count)")
        }
        var properties: [String: String] = [:]
        for (name, member) in members {
            let text = try APIRouter.string(member, field: "properties.\(printable(name))")
            guard !name.isEmpty, name.utf8.count <= maxPropertyBytes, text.utf8.count <= maxPropertyBytes, !name.utf8.contains(0) else {
                throw .badRequest("properties: names must be 1 to \(maxPropertyBytes) bytes and values at most \(maxPropertyBytes)")
            }
            properties[name] = text
        }
        return properties
    }
}

extension LoggerJSON {
    /// The logger's configuration in PUT /logger's fields (unset ones null), for the audit
    /// trail's record of a change.
    public static func json(_ logger: LoggerConfig) -> JSONValue {
        .object([
            ("log_path", logger.logPath.map { .string($0) } ?? .null),
            ("level", logger.level.map { .string($0.description) } ?? .null),
            ("show_level", logger.showLevel.map { .bool($0) } ?? .null),
            ("show_log_origin", logger.showLogOrigin.map { .bool($0) } ?? .null),
            ("module", logger.module.map { .string($0) } ?? .null),
        ])
    }
}

extension MetricsJSON {
    /// The metrics' configuration in PUT /metrics' fields (properties sorted by name).
    public static func json(_ metrics: MetricsConfig) -> JSONValue {
        .object([
            ("metrics_path", .string(metrics.path)),
            ("emit_id", .bool(metrics.emitID)),
            ("properties", .object(metrics.properties.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
        ])
    }
}
