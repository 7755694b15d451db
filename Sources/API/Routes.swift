import SwiftletCore

// The control API's resources, shaped like Firecracker's so curl and its clients work:
//
//   GET   /                 instance info            {"id","state","vmm_version","app_name"}
//   GET   /version          Firecracker's version    {"firecracker_version"}
//   GET   /vm/config        the configuration        {"boot-source":{…},"machine-config":{…}}
//   PUT   /boot-source      before start             {"kernel_image_path", "initrd_path"?, "boot_args"?}
//   GET   /machine-config   always                   {"vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "huge_pages"}
//   PUT   /machine-config   before start             {"vcpu_count", "mem_size_mib", "smt"?, "track_dirty_pages"?,
//                                                     "huge_pages"?, "cpu_template"?} (left out: the defaults)
//   PATCH /machine-config   before start             the same fields, each optional (left out: unchanged)
//   PUT   /logger           before start             {"log_path"?, "level"?, "show_level"?, "show_log_origin"?, "module"?}
//   PUT   /metrics          before start, once       {"metrics_path", "emit_id"?, "properties"?}
//   PUT   /actions          {"action_type": "InstanceStart"}    before start
//                           {"action_type": "SendCtrlAltDel"}   after start: graceful shutdown
//                                                               (the guest's power key / ctrl-alt-del)
//                           {"action_type": "FlushMetrics"}     after start: write the metrics now
//   PATCH /vm               {"state": "Paused" | "Resumed"}     after start
//   PUT   /drives/{id}      before start   {"drive_id", "path_on_host", "is_root_device", "is_read_only",
//                                           "partuuid"?, "cache_type"?, "io_engine"?, "rate_limiter"?}
//                           (a PUT of an existing drive_id replaces it, as in Firecracker)
//   PATCH /drives/{id}      after start    {"drive_id", "path_on_host"?, "rate_limiter"?}: media
//                                          change, new limits
//   PUT   /entropy          before start   {"rate_limiter"?}: a virtio-rng device
//   PUT   /network-interfaces/{id}  before start  {"iface_id", "host_dev_name", "guest_mac"?,
//                                                  "rx_rate_limiter"?, "tx_rate_limiter"?}
//                           (a PUT of an existing iface_id replaces it)
//   PATCH /network-interfaces/{id}  after start   {"iface_id", "rx_rate_limiter"?, "tx_rate_limiter"?}
//   PUT   /vsock            before start   {"guest_cid", "uds_path", "vsock_id"?}
// A rate_limiter is Firecracker's {"bandwidth"?: {"size", "one_time_burst"?, "refill_time"},
// "ops"?: {…}}; in a PATCH, the buckets named replace the old ones and size 0 removes one.
//
// Successful PUT/PATCH answer 204 No Content. Errors answer {"fault_message": "…"}: 400 for
// bad bodies (unknown fields, wrong types, out-of-range values, missing required fields) and
// for operations in the wrong state, 404 for unknown paths, 405 (with Allow) for a known path
// with another method. There is deliberately no "Shutdown" alias: SendCtrlAltDel is the one
// name Firecracker clients already send. `smt` is accepted only as false and
// `cpu_template` only as "None" (Swiftlet has no SMT topology and no CPU templates), because
// Firecracker's SDKs send them; `track_dirty_pages` is kept and reported (nothing uses it).
// The answers are shaped by the Firecracker version in `APIRouter.firecrackerVersion`.
// Requests are routed by path only; a query string is ignored.

/// The VM's lifecycle as the API reports it.
public enum InstanceState: Equatable, CustomStringConvertible {
    case notStarted, running, paused

    /// Firecracker's spelling, used in GET /.
    public var description: String {
        switch self {
        case .notStarted: return "Not started"
        case .running: return "Running"
        case .paused: return "Paused"
        }
    }
}

/// PUT /boot-source.
public struct BootSourceConfig: Equatable {
    public var kernelImagePath: String
    public var initrdPath: String?
    public var bootArgs: String?

    public init(kernelImagePath: String, initrdPath: String? = nil, bootArgs: String? = nil) {
        self.kernelImagePath = kernelImagePath
        self.initrdPath = initrdPath
        self.bootArgs = bootArgs
    }

    /// Replaces the boot source of `config` (a later PUT replaces an earlier one entirely).
    public func apply(to config: inout VMConfig) {
        config.kernelPath = kernelImagePath
        config.initrdPath = initrdPath
        config.cmdline = bootArgs
    }
}

/// PUT /machine-config: every field; those the body leaves out are the defaults.
public struct MachineConfig: Equatable {
    public var vcpuCount: Int
    public var memSizeMiB: UInt64
    public var hugePages: HugePages
    public var trackDirtyPages: Bool

    public init(vcpuCount: Int, memSizeMiB: UInt64, hugePages: HugePages = .none, trackDirtyPages: Bool = false) {
        self.vcpuCount = vcpuCount
        self.memSizeMiB = memSizeMiB
        self.hugePages = hugePages
        self.trackDirtyPages = trackDirtyPages
    }

    public func apply(to config: inout VMConfig) {
        config.cpus = vcpuCount
        config.memoryMiB = memSizeMiB
        config.hugePages = hugePages
        config.trackDirtyPages = trackDirtyPages
    }
}

/// PATCH /machine-config: the fields the body names; the others stay as they are.
public struct MachineConfigUpdate: Equatable {
    public var vcpuCount: Int?
    public var memSizeMiB: UInt64?
    public var hugePages: HugePages?
    public var trackDirtyPages: Bool?

    public init(vcpuCount: Int? = nil, memSizeMiB: UInt64? = nil, hugePages: HugePages? = nil, trackDirtyPages: Bool? = nil) {
        self.vcpuCount = vcpuCount
        self.memSizeMiB = memSizeMiB
        self.hugePages = hugePages
        self.trackDirtyPages = trackDirtyPages
    }

    public func apply(to config: inout VMConfig) {
        if let vcpuCount { config.cpus = vcpuCount }
        if let memSizeMiB { config.memoryMiB = memSizeMiB }
        if let hugePages { config.hugePages = hugePages }
        if let trackDirtyPages { config.trackDirtyPages = trackDirtyPages }
    }
}

/// What a request asks the VMM to do.
public enum APIAction: Equatable, CustomStringConvertible {
    case configureBootSource(BootSourceConfig)
    case configureMachine(MachineConfig)
    case updateMachine(MachineConfigUpdate)
    case configureLogger(LoggerConfig)
    case configureMetrics(MetricsConfig)
    case configureDrive(DiskConfig)
    /// PATCH /drives: a media change (path), new limits, or both.
    case updateDrive(driveID: String, path: String?, rateLimiter: RateLimiterConfig?)
    case configureEntropy(rateLimiter: RateLimiterConfig?)
    case configureNetworkInterface(NetworkInterfaceConfig)
    case updateNetworkInterface(id: String, rx: RateLimiterConfig?, tx: RateLimiterConfig?)
    case configureVsock(VsockConfig)
    case start
    case sendCtrlAltDel
    case flushMetrics
    case pause
    case resume
    case describeInstance
    case describeVersion
    case describeMachine
    case describeConfig

    public var description: String {
        switch self {
        case .configureBootSource(let boot): return "configure boot source (kernel \(boot.kernelImagePath))"
        case .configureMachine(let machine):
            return "configure machine (\(machine.vcpuCount) vCPUs, \(machine.memSizeMiB) MiB)"
        case .updateMachine: return "update machine configuration"
        case .configureLogger: return "configure logger"
        case .configureMetrics(let metrics): return "configure metrics (\(metrics.path))"
        case .configureDrive(let disk): return "configure drive \(disk.id)"
        case .updateDrive(let id, _, _): return "update drive \(id)"
        case .configureEntropy: return "configure entropy device"
        case .configureNetworkInterface(let interface): return "configure network interface \(interface.id)"
        case .updateNetworkInterface(let id, _, _): return "update network interface \(id)"
        case .configureVsock(let vsock): return "configure vsock (guest CID \(vsock.guestCID))"
        case .start: return "start"
        case .sendCtrlAltDel: return "send ctrl-alt-del"
        case .flushMetrics: return "flush metrics"
        case .pause: return "pause"
        case .resume: return "resume"
        case .describeInstance: return "describe instance"
        case .describeVersion: return "describe version"
        case .describeMachine: return "describe machine configuration"
        case .describeConfig: return "describe config"
        }
    }
}

/// Maps requests to actions and builds the JSON of responses.
public enum APIRouter {
    public static let appName = "swiftlet"
    /// The Firecracker release whose API (and command line) Swiftlet speaks: GET /version,
    /// GET /'s vmm_version and `firecracker --version` report it, because clients compare
    /// it with the Firecracker versions they support (Kata Containers wants 0.21.1 or
    /// later). 1.12's resources are those of 1.7 to 1.13 (huge_pages is 1.7's; 1.14 adds
    /// pmem, serial and memory hotplug, which Swiftlet lacks).
    public static let firecrackerVersion = "1.12.0"
    /// The largest mem_size_mib: 1 TiB.
    public static let maxMemoryMiB: UInt64 = 1 << 20

    private struct Resource {
        let path: String
        let methods: [String]
    }

    private static let resources: [Resource] = [
        Resource(path: "/", methods: ["GET"]),
        Resource(path: "/version", methods: ["GET"]),
        Resource(path: "/vm/config", methods: ["GET"]),
        Resource(path: "/boot-source", methods: ["PUT"]),
        Resource(path: "/machine-config", methods: ["GET", "PUT", "PATCH"]),
        Resource(path: "/logger", methods: ["PUT"]),
        Resource(path: "/metrics", methods: ["PUT"]),
        Resource(path: "/actions", methods: ["PUT"]),
        Resource(path: "/vm", methods: ["PATCH"]),
        Resource(path: "/entropy", methods: ["PUT"]),
        Resource(path: "/vsock", methods: ["PUT"]),
    ]
    static let drivesPrefix = "/drives/"
    static let networkInterfacesPrefix = "/network-interfaces/"

    /// The action `request` asks for in `state`, or the error to answer.
    public static func route(_ request: HTTPRequest, state: InstanceState) throws(APIError) -> APIAction {
        if request.path.hasPrefix(drivesPrefix) { return try routeDrive(request, state: state) }
        if request.path.hasPrefix(networkInterfacesPrefix) { return try routeNetworkInterface(request, state: state) }
        guard let resource = resources.first(where: { $0.path == request.path }) else {
            throw APIError(status: 404, message: "no such resource: \(printable(request.path))")
        }
        guard resource.methods.contains(request.method) else {
            throw APIError(status: 405, message: "\(printable(request.method)) is not allowed on \(resource.path); use \(spoken(resource.methods))",
                           allow: resource.methods.joined(separator: ", "))
        }
        switch resource.path {
        case "/": return .describeInstance
        case "/version": return .describeVersion
        case "/vm/config": return .describeConfig
        case "/logger":
            try requireNotStarted(state, what: "configuring the logger")
            return .configureLogger(try LoggerJSON.parse(try body(of: request)))
        case "/metrics":
            try requireNotStarted(state, what: "configuring the metrics")
            return .configureMetrics(try MetricsJSON.parse(try body(of: request)))
        case "/entropy":
            try requireNotStarted(state, what: "configuring the entropy device")
            return .configureEntropy(rateLimiter: try parseEntropy(try body(of: request)))
        case "/vsock":
            try requireNotStarted(state, what: "configuring the vsock device")
            return .configureVsock(try parseVsock(try body(of: request)))
        case "/boot-source":
            try requireNotStarted(state, what: "configuring the boot source")
            return .configureBootSource(try parseBootSource(try body(of: request)))
        case "/machine-config":
            switch request.method {
            case "GET": return .describeMachine
            case "PUT":
                try requireNotStarted(state, what: "configuring the machine")
                return .configureMachine(try parseMachineConfig(try body(of: request)))
            default:
                try requireNotStarted(state, what: "changing the machine configuration")
                return .updateMachine(try parseMachineConfigUpdate(try body(of: request)))
            }
        case "/actions":
            let (action, name) = try parseAction(try body(of: request))
            if action == .start {
                try requireNotStarted(state, what: name)
            } else if state == .notStarted {
                throw .badRequest("\(name) is not supported before the VM is started")
            }
            return action
        default:  // "/vm"
            let action = try parseVMState(try body(of: request))
            guard state != .notStarted else {
                throw .badRequest("pausing or resuming is not supported before the VM is started")
            }
            return action
        }
    }

    /// /drives/{drive_id}: PUT before start, PATCH after.
    private static func routeDrive(_ request: HTTPRequest, state: InstanceState) throws(APIError) -> APIAction {
        let id = String(request.path.dropFirst(drivesPrefix.count))
        guard !id.isEmpty, !id.hasSubstring("/") else { throw APIError(status: 404, message: "no such resource: \(printable(request.path))") }
        switch request.method {
        case "PUT":
            try requireNotStarted(state, what: "configuring a drive")
            let disk = try parseDrive(try body(of: request))
            guard disk.id == id else { throw .badRequest("drive_id \"\(printable(disk.id))\" differs from the path's \"\(printable(id))\"") }
            return .configureDrive(disk)
        case "PATCH":
            guard state != .notStarted else { throw .badRequest("changing a drive's media is supported after the VM has started; before, PUT the drive again") }
            let (driveID, path, limiter) = try parseDriveUpdate(try body(of: request))
            guard driveID == id else { throw .badRequest("drive_id \"\(printable(driveID))\" differs from the path's \"\(printable(id))\"") }
            return .updateDrive(driveID: id, path: path, rateLimiter: limiter)
        default:
            throw APIError(status: 405, message: "\(printable(request.method)) is not allowed on /drives/{drive_id}; use PUT or PATCH", allow: "PUT, PATCH")
        }
    }

    /// /network-interfaces/{iface_id}: PUT before start, PATCH (rate limiters) after.
    private static func routeNetworkInterface(_ request: HTTPRequest, state: InstanceState) throws(APIError) -> APIAction {
        let id = String(request.path.dropFirst(networkInterfacesPrefix.count))
        guard !id.isEmpty, !id.hasSubstring("/") else { throw APIError(status: 404, message: "no such resource: \(printable(request.path))") }
        switch request.method {
        case "PUT":
            try requireNotStarted(state, what: "configuring a network interface")
            let interface = try parseNetworkInterface(try body(of: request))
            guard interface.id == id else { throw .badRequest("iface_id \"\(printable(interface.id))\" differs from the path's \"\(printable(id))\"") }
            return .configureNetworkInterface(interface)
        case "PATCH":
            guard state != .notStarted else { throw .badRequest("updating a network interface is supported after the VM has started; before, PUT it again") }
            var ifaceID: String?, rx: RateLimiterConfig?, tx: RateLimiterConfig?
            for (name, value) in try body(of: request) {
                switch name {
                case "iface_id": ifaceID = try identifier(value, field: name)
                case "rx_rate_limiter": rx = try RateLimiterJSON.parse(value, field: name)
                case "tx_rate_limiter": tx = try RateLimiterJSON.parse(value, field: name)
                default: throw unknownField(name, in: "network interface update")
                }
            }
            guard let ifaceID else { throw .badRequest("missing required field \"iface_id\"") }
            guard ifaceID == id else { throw .badRequest("iface_id \"\(printable(ifaceID))\" differs from the path's \"\(printable(id))\"") }
            return .updateNetworkInterface(id: id, rx: rx, tx: tx)
        default:
            throw APIError(status: 405, message: "\(printable(request.method)) is not allowed on /network-interfaces/{iface_id}; use PUT or PATCH", allow: "PUT, PATCH")
        }
    }

    static func parseNetworkInterface(_ members: [(String, JSONValue)]) throws(APIError) -> NetworkInterfaceConfig {
        var id: String?, tap: String?, mac: MACAddress?, rx: RateLimiterConfig?, tx: RateLimiterConfig?
        for (name, value) in members {
            switch name {
            case "rx_rate_limiter": rx = try RateLimiterJSON.parse(value, field: name)
            case "tx_rate_limiter": tx = try RateLimiterJSON.parse(value, field: name)
            case "iface_id": id = try identifier(value, field: name)
            case "host_dev_name":
                let text = try string(value, field: name)
                guard NetworkInterfaceConfig.isValidTapName(text) else {
                    throw .badRequest("host_dev_name must be a tap name of 1 to \(NetworkInterfaceConfig.maxTapNameLength) characters, without '/', ':' or spaces")
                }
                tap = text
            case "guest_mac":
                guard value != .null else { continue }
                let text = try string(value, field: name)
                guard let address = MACAddress(text), address.isValidUnicast else {
                    throw .badRequest("guest_mac must be a unicast address like \"06:00:0a:00:02:02\", got \"\(printable(text))\"")
                }
                mac = address
            default: throw unknownField(name, in: "network interface")
            }
        }
        guard let id else { throw .badRequest("missing required field \"iface_id\"") }
        guard let tap else { throw .badRequest("missing required field \"host_dev_name\"") }
        var interface = NetworkInterfaceConfig(id: id, tapName: tap, mac: mac)
        interface.rxRateLimiter = rx
        interface.txRateLimiter = tx
        return interface
    }

    /// PUT /entropy: {"rate_limiter"?}.
    static func parseEntropy(_ members: [(String, JSONValue)]) throws(APIError) -> RateLimiterConfig? {
        var limiter: RateLimiterConfig?
        for (name, value) in members {
            guard name == "rate_limiter" else { throw unknownField(name, in: "entropy") }
            limiter = try RateLimiterJSON.parse(value)
        }
        return limiter
    }

    static func parseVsock(_ members: [(String, JSONValue)]) throws(APIError) -> VsockConfig {
        var cid: Int64?, path: String?
        for (name, value) in members {
            switch name {
            case "guest_cid": cid = try integer(value, field: name, in: Int64(VsockConfig.minGuestCID)...Int64(VsockConfig.maxGuestCID))
            case "uds_path":
                let text = try self.path(value, field: name)
                guard text.utf8.count <= VsockConfig.maxUDSPathLength else {
                    throw .badRequest("uds_path must be at most \(VsockConfig.maxUDSPathLength) bytes (a Unix socket path)")
                }
                path = text
            case "vsock_id": _ = try string(value, field: name)   // Firecracker's older clients send it
            default: throw unknownField(name, in: "vsock")
            }
        }
        guard let cid else { throw .badRequest("missing required field \"guest_cid\"") }
        guard let path else { throw .badRequest("missing required field \"uds_path\"") }
        return VsockConfig(guestCID: UInt64(cid), udsPath: path)
    }

    static func parseDrive(_ members: [(String, JSONValue)]) throws(APIError) -> DiskConfig {
        var id: String?, path: String?, root: Bool?, readOnly = false
        var partUUID: String?, cacheType: String?, rateLimiter: RateLimiterConfig?
        for (name, value) in members {
            switch name {
            case "drive_id": id = try driveID(value)
            case "path_on_host": path = try self.path(value, field: name)
            case "is_root_device": root = try boolean(value, field: name)
            case "is_read_only": if value != .null { readOnly = try boolean(value, field: name) }
            case "partuuid": if value != .null { partUUID = try string(value, field: name) }
            case "cache_type":
                let type = try string(value, field: name)
                guard type == "Unsafe" || type == "Writeback" else { throw .badRequest("cache_type must be \"Unsafe\" or \"Writeback\", got \"\(printable(type))\"") }
                cacheType = type
            case "io_engine":
                guard try string(value, field: name) == "Sync" else { throw .badRequest("io_engine: only \"Sync\" is supported") }
            case "rate_limiter": rateLimiter = try RateLimiterJSON.parse(value)
            default: throw unknownField(name, in: "drive")
            }
        }
        guard let id else { throw .badRequest("missing required field \"drive_id\"") }
        guard let path else { throw .badRequest("missing required field \"path_on_host\"") }
        guard let root else { throw .badRequest("missing required field \"is_root_device\"") }
        var disk = DiskConfig(id: id, path: path, readOnly: readOnly)
        disk.isRootDevice = root
        disk.partUUID = partUUID
        disk.cacheType = cacheType
        disk.rateLimiter = rateLimiter
        return disk
    }

    static func parseDriveUpdate(_ members: [(String, JSONValue)]) throws(APIError) -> (String, String?, RateLimiterConfig?) {
        var id: String?, path: String?, limiter: RateLimiterConfig?
        for (name, value) in members {
            switch name {
            case "drive_id": id = try driveID(value)
            case "path_on_host": path = try self.path(value, field: name)
            case "rate_limiter": limiter = try RateLimiterJSON.parse(value)
            default: throw unknownField(name, in: "drive update")
            }
        }
        guard let id else { throw .badRequest("missing required field \"drive_id\"") }
        guard path != nil || limiter != nil else {
            throw .badRequest("only path_on_host and rate_limiter can be changed after start; the body names neither")
        }
        return (id, path, limiter)
    }

    /// Firecracker's drive ids: letters, digits and underscores, at most 64.
    private static func driveID(_ value: JSONValue) throws(APIError) -> String {
        try identifier(value, field: "drive_id")
    }

    /// Firecracker's resource ids (drive_id, iface_id): letters, digits, '_' and '-', at most 64.
    private static func identifier(_ value: JSONValue, field: String) throws(APIError) -> String {
        let id = try string(value, field: field)
        guard !id.isEmpty, id.utf8.count <= VMConfig.maxDriveIDLength,
              id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D }) else {
            throw .badRequest("\(field) must be 1 to \(VMConfig.maxDriveIDLength) letters, digits, '_' or '-'")
        }
        return id
    }

    static func boolean(_ value: JSONValue, field: String) throws(APIError) -> Bool {
        guard case .bool(let flag) = value else { throw .badRequest("\(field) must be a boolean, got \(value.typeName)") }
        return flag
    }

    private static func requireNotStarted(_ state: InstanceState, what: String) throws(APIError) {
        guard state == .notStarted else {
            throw .badRequest("\(what) is not supported after the VM has started")
        }
    }

    /// The body parsed as one JSON object's members. The server has bounded its size
    /// already (--http-api-max-payload-size, which may exceed the parser's default).
    private static func body(of request: HTTPRequest) throws(APIError) -> [(String, JSONValue)] {
        guard !request.body.isEmpty else { throw .badRequest("the request body is empty; expected a JSON object") }
        let value: JSONValue
        do {
            value = try JSONParser.parse(request.body, maxBytes: max(JSONParser.defaultMaxBytes, request.body.count))
        } catch {
            throw .badRequest(error.description)
        }
        return try members(of: value, what: "the request body")
    }

    /// `value`'s members if it is an object.
    static func members(of value: JSONValue, what: String) throws(APIError) -> [(String, JSONValue)] {
        guard case .object(let members) = value else {
            throw .badRequest("\(what) must be a JSON object, got \(value.typeName)")
        }
        return members
    }

    /// "GET", "GET or PUT", "GET, PUT or PATCH".
    private static func spoken(_ words: [String]) -> String {
        guard words.count > 1 else { return words.first ?? "" }
        return words.dropLast().joined(separator: ", ") + " or " + words[words.count - 1]
    }

    static func unknownField(_ name: String, in resource: String) -> APIError {
        .badRequest("unknown field \"\(printable(name))\" in \(resource)")
    }

    static func string(_ value: JSONValue, field: String) throws(APIError) -> String {
        guard case .string(let text) = value else {
            throw .badRequest("\(field) must be a string, got \(value.typeName)")
        }
        guard !text.utf8.contains(0) else { throw .badRequest("\(field) must not contain a NUL character") }
        return text
    }

    static func path(_ value: JSONValue, field: String) throws(APIError) -> String {
        let text = try string(value, field: field)
        guard !text.isEmpty else { throw .badRequest("\(field) must not be empty") }
        return text
    }

    static func integer(_ value: JSONValue, field: String, in range: ClosedRange<Int64>) throws(APIError) -> Int64 {
        guard case .integer(let n) = value else {
            throw .badRequest("\(field) must be an integer, got \(value.typeName)")
        }
        guard range.contains(n) else {
            throw .badRequest("\(field) must be between \(range.lowerBound) and \(range.upperBound), got \(n)")
        }
        return n
    }

    static func parseBootSource(_ members: [(String, JSONValue)]) throws(APIError) -> BootSourceConfig {
        var kernel: String?
        var initrd: String?
        var bootArgs: String?
        for (name, value) in members {
            switch name {
            case "kernel_image_path": kernel = try path(value, field: name)
            case "initrd_path": if value != .null { initrd = try path(value, field: name) }
            case "boot_args": if value != .null { bootArgs = try string(value, field: name) }
            default: throw unknownField(name, in: "boot-source")
            }
        }
        guard let kernel else { throw .badRequest("missing required field \"kernel_image_path\"") }
        return BootSourceConfig(kernelImagePath: kernel, initrdPath: initrd, bootArgs: bootArgs)
    }

    /// PUT /machine-config (and a config file's "machine-config"): vcpu_count and
    /// mem_size_mib required, the rest their defaults when left out, as in Firecracker.
    static func parseMachineConfig(_ members: [(String, JSONValue)]) throws(APIError) -> MachineConfig {
        let fields = try parseMachineConfigUpdate(members, allowEmpty: true)
        guard let cpus = fields.vcpuCount else { throw .badRequest("missing required field \"vcpu_count\"") }
        guard let memory = fields.memSizeMiB else { throw .badRequest("missing required field \"mem_size_mib\"") }
        return MachineConfig(vcpuCount: cpus, memSizeMiB: memory, hugePages: fields.hugePages ?? .none,
                             trackDirtyPages: fields.trackDirtyPages ?? false)
    }

    /// PATCH /machine-config: any of the fields, at least one.
    static func parseMachineConfigUpdate(_ members: [(String, JSONValue)], allowEmpty: Bool = false) throws(APIError) -> MachineConfigUpdate {
        guard allowEmpty || !members.isEmpty else { throw .badRequest("the PATCH names no machine-config field to change") }
        var update = MachineConfigUpdate()
        for (name, value) in members {
            switch name {
            case "vcpu_count":
                update.vcpuCount = Int(try integer(value, field: name, in: 1...Int64(VMConfig.maxCPUs)))
            case "mem_size_mib":
                update.memSizeMiB = UInt64(try integer(value, field: name, in: Int64(VMConfig.minMemoryMiB)...Int64(maxMemoryMiB)))
            case "smt":
                guard try !boolean(value, field: name) else { throw .badRequest(smtRefusal) }
            case "track_dirty_pages":
                update.trackDirtyPages = try boolean(value, field: name)
            case "huge_pages":
                switch try string(value, field: name) {
                case "None": update.hugePages = HugePages.none
                case "2M": update.hugePages = .twoMiB
                case let other: throw .badRequest("huge_pages must be \"None\" or \"2M\", got \"\(printable(other))\"")
                }
            case "cpu_template":
                // Firecracker's static CPU templates (C3, T2, V1N1, …) shape CPUID or the
                // arm64 ID registers; Swiftlet has none, so only "None" (no template) is true.
                if value != .null, try string(value, field: name) != "None" {
                    throw .badRequest("cpu_template: Swiftlet has no CPU templates; set it to \"None\" or leave it out")
                }
            default: throw unknownField(name, in: "machine-config")
            }
        }
        return update
    }

    /// Why `smt: true` is refused. Firecracker refuses it on aarch64 with this message;
    /// on x86_64 it gives the guest two threads per core, which Swiftlet does not (its
    /// CPUID describes one thread per core), so it is refused there too.
    static var smtRefusal: String {
        #if arch(arm64)
        return "Machine config error: Enabling simultaneous multithreading is not supported on aarch64."
        #else
        return "Machine config error: Enabling simultaneous multithreading is not supported: Swiftlet's vCPUs are one thread per core; set smt to false or leave it out."
        #endif
    }

    /// The action and its name (for messages).
    static func parseAction(_ members: [(String, JSONValue)]) throws(APIError) -> (APIAction, String) {
        var action: (APIAction, String)?
        for (name, value) in members {
            guard name == "action_type" else { throw unknownField(name, in: "actions") }
            let type = try string(value, field: name)
            switch type {
            case "InstanceStart": action = (.start, type)
            case "SendCtrlAltDel": action = (.sendCtrlAltDel, type)
            case "FlushMetrics": action = (.flushMetrics, type)
            case let other:
                throw .badRequest("unknown action_type \"\(printable(other))\"; expected InstanceStart, SendCtrlAltDel or FlushMetrics")
            }
        }
        guard let action else { throw .badRequest("missing required field \"action_type\"") }
        return action
    }

    static func parseVMState(_ members: [(String, JSONValue)]) throws(APIError) -> APIAction {
        var action: APIAction?
        for (name, value) in members {
            guard name == "state" else { throw unknownField(name, in: "vm") }
            switch try string(value, field: name) {
            case "Paused": action = .pause
            case "Resumed": action = .resume
            case let other:
                throw .badRequest("unknown state \"\(printable(other))\"; expected Paused or Resumed")
            }
        }
        guard let action else { throw .badRequest("missing required field \"state\"") }
        return action
    }

    // MARK: response bodies

    /// GET / : {"id", "state", "vmm_version", "app_name"}. vmm_version is the Firecracker
    /// version (clients compare it with Firecracker's); app_name says it is Swiftlet.
    public static func instanceInfo(id: String, state: InstanceState, vmmVersion: String = firecrackerVersion) -> JSONValue {
        .object([
            ("id", .string(id)),
            ("state", .string(state.description)),
            ("vmm_version", .string(vmmVersion)),
            ("app_name", .string(appName)),
        ])
    }

    /// GET /version : {"firecracker_version"}.
    public static func version() -> JSONValue {
        .object([("firecracker_version", .string(firecrackerVersion))])
    }

    /// GET /machine-config, and "machine-config" in GET /vm/config, with Firecracker's
    /// fields (no cpu_template: Firecracker leaves it out when there is none).
    public static func machineConfig(_ config: VMConfig) -> JSONValue {
        .object([
            ("vcpu_count", .integer(Int64(config.cpus))),
            ("mem_size_mib", .integer(Int64(clamping: config.memoryMiB))),
            ("smt", .bool(false)),
            ("track_dirty_pages", .bool(config.trackDirtyPages)),
            ("huge_pages", .string(config.hugePages == .twoMiB ? "2M" : "None")),
        ])
    }

    /// GET /vm/config : {"boot-source": {...}, "machine-config": {...}}. Unset boot-source
    /// fields are left out (an unconfigured kernel gives an empty boot-source object).
    public static func vmConfig(_ config: VMConfig) -> JSONValue {
        var boot: [(String, JSONValue)] = []
        if let kernel = config.kernelPath { boot.append(("kernel_image_path", .string(kernel))) }
        if let initrd = config.initrdPath { boot.append(("initrd_path", .string(initrd))) }
        if let args = config.cmdline { boot.append(("boot_args", .string(args))) }
        var drives: [JSONValue] = []
        for disk in config.disks {
            var members: [(String, JSONValue)] = [
                ("drive_id", .string(disk.id)),
                ("path_on_host", .string(disk.path)),
                ("is_root_device", .bool(disk.isRootDevice)),
                ("is_read_only", .bool(disk.readOnly)),
            ]
            if let uuid = disk.partUUID { members.append(("partuuid", .string(uuid))) }
            members.append(("cache_type", .string(disk.cacheType ?? "Unsafe")))
            members.append(("io_engine", .string("Sync")))
            members.append(("rate_limiter", RateLimiterJSON.json(disk.rateLimiter)))
            drives.append(.object(members))
        }
        var interfaces: [JSONValue] = []
        for interface in config.networkInterfaces {
            var members: [(String, JSONValue)] = [("iface_id", .string(interface.id)), ("host_dev_name", .string(interface.tapName))]
            if let mac = interface.mac { members.append(("guest_mac", .string(mac.description))) }
            members.append(("rx_rate_limiter", RateLimiterJSON.json(interface.rxRateLimiter)))
            members.append(("tx_rate_limiter", RateLimiterJSON.json(interface.txRateLimiter)))
            interfaces.append(.object(members))
        }
        return .object([("boot-source", .object(boot)), ("machine-config", machineConfig(config)),
                        ("drives", .array(drives)), ("network-interfaces", .array(interfaces)),
                        ("vsock", config.vsock.map { .object([("guest_cid", .integer(Int64(clamping: $0.guestCID))), ("uds_path", .string($0.udsPath))]) } ?? .null),
                        ("entropy", config.entropy ? .object([("rate_limiter", RateLimiterJSON.json(config.entropyRateLimiter))]) : .null)])
    }
}
