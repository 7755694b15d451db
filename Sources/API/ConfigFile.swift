import SwiftletCore

/// Firecracker's `--config-file`: one JSON object describing the VM with the objects the
/// API's requests carry, read by the API's own parsers and applied as the requests are:
///
///   {"boot-source": {…},                              required
///    "machine-config"?: {…}, "drives"?: [{…}, …], "network-interfaces"?: [{…}, …],
///    "vsock"?: {…}, "entropy"?: {…}, "logger"?: {…}, "metrics"?: {…}}
///
/// A section that is null is absent. Firecracker's sections for what Swiftlet lacks
/// (balloon, mmds-config, cpu-config, pmem, memory-hotplug) are refused, naming the
/// section and why; so is any other key (Firecracker ignores unknown keys, but a misspelt
/// section silently lost would make a different VM). Sections apply in Firecracker's order
/// (logger, metrics, machine-config, boot-source, drives, network interfaces, vsock,
/// entropy), whatever their order in the file.
public enum ConfigFile {
    /// A Kata Containers configuration is about 3 KiB; a larger file than this is no VM
    /// description (and is never read whole).
    public static let maxBytes = 1 << 20

    /// The sections, in the order they apply.
    static let sections = ["logger", "metrics", "machine-config", "boot-source", "drives", "network-interfaces", "vsock", "entropy"]

    /// Firecracker sections Swiftlet cannot honour, and why.
    static func unsupported(_ key: String) -> String? {
        switch key {
        case "balloon": return "Swiftlet has no balloon device"
        case "mmds-config": return "Swiftlet has no MMDS (microVM metadata service)"
        case "cpu-config": return "Swiftlet has no CPU templates"
        case "pmem": return "Swiftlet has no virtio-pmem devices"
        case "memory-hotplug": return "Swiftlet has no memory hotplug"
        default: return nil
        }
    }

    /// Applies the configuration in `bytes` to `config` (which holds the command line's
    /// settings) and checks the result. Errors say where: `drives[1]: missing required
    /// field "path_on_host"`; the caller names the file.
    public static func apply(_ bytes: [UInt8], to config: inout VMConfig) throws(SwiftletError) {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes, maxBytes: maxBytes)
        } catch {
            throw .invalidArgument("\(error)")
        }
        let members: [(String, JSONValue)]
        do { members = try APIRouter.members(of: document, what: "the configuration") } catch { throw .invalidArgument(error.message) }
        var bySection: [String: JSONValue] = [:]
        for (key, value) in members where value != .null {
            if let reason = unsupported(key) { throw .invalidArgument("\"\(printable(key))\" is not supported: \(reason)") }
            guard sections.contains(key) else {
                throw .invalidArgument("unknown section \"\(printable(key))\" (Swiftlet reads \(sections.joined(separator: ", ")))")
            }
            bySection[key] = value
        }
        guard bySection["boot-source"] != nil else { throw .invalidArgument("missing required section \"boot-source\"") }
        for section in sections {
            guard let value = bySection[section] else { continue }
            for (place, action) in try actions(section, value) {
                do {
                    _ = try action.configure(&config)
                } catch {
                    throw .invalidArgument("\(place): \(error.message)")
                }
            }
        }
        try config.validate()
    }

    /// The API actions a section stands for, each with where it is in the file.
    private static func actions(_ section: String, _ value: JSONValue) throws(SwiftletError) -> [(String, APIAction)] {
        switch section {
        case "drives", "network-interfaces":
            guard case .array(let items) = value else { throw .invalidArgument("\(section) must be an array, got \(value.typeName)") }
            var actions: [(String, APIAction)] = []
            for (index, item) in items.enumerated() {
                let place = "\(section)[\(index)]"
                actions.append((place, try parse(item, place) { (members) throws(APIError) -> APIAction in
                    section == "drives" ? .configureDrive(try APIRouter.parseDrive(members))
                        : .configureNetworkInterface(try APIRouter.parseNetworkInterface(members))
                }))
            }
            return actions
        default:
            return [(section, try parse(value, section) { (members) throws(APIError) -> APIAction in
                switch section {
                case "logger": return .configureLogger(try LoggerJSON.parse(members))
                case "metrics": return .configureMetrics(try MetricsJSON.parse(members))
                case "machine-config": return .configureMachine(try APIRouter.parseMachineConfig(members))
                case "boot-source": return .configureBootSource(try APIRouter.parseBootSource(members))
                case "vsock": return .configureVsock(try APIRouter.parseVsock(members))
                default: return .configureEntropy(rateLimiter: try APIRouter.parseEntropy(members))
                }
            })]
        }
    }

    /// `value` as an object, read by `parser`; errors prefixed with `place`.
    private static func parse(_ value: JSONValue, _ place: String,
                              _ parser: ([(String, JSONValue)]) throws(APIError) -> APIAction) throws(SwiftletError) -> APIAction {
        do {
            return try parser(try APIRouter.members(of: value, what: place))
        } catch {
            throw .invalidArgument(error.message.hasPrefix(place) ? error.message : "\(place): \(error.message)")
        }
    }
}
