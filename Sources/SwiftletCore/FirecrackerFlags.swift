// Firecracker's command-line flags. `swiftlet run` accepts them next to its own; when the
// binary runs under the name `firecracker` the whole command line is Firecracker's
// (RunOptions, dialect .firecracker), so the tools that start Firecracker (its Go SDK,
// Kata Containers, the jailer) start Swiftlet unchanged.

/// Which command line `RunOptions.parse` reads.
public enum CommandLineDialect: Equatable {
    /// `swiftlet run`: Swiftlet's flags and Firecracker's; Swiftlet's defaults.
    case swiftlet
    /// The binary run as `firecracker`: Firecracker's flags and defaults only.
    case firecracker

    /// Whether the program name (argv[0]'s last path component) asks for Firecracker's
    /// command line: `firecracker`, or a release-style name such as
    /// `firecracker-v1.12.0-x86_64`.
    public static func forProgramName(_ name: String) -> CommandLineDialect {
        name == "firecracker" || name.hasPrefix("firecracker-") ? .firecracker : .swiftlet
    }
}

/// What Firecracker does when its command line leaves something out, mirrored in the
/// `firecracker` dialect.
public enum FirecrackerDefaults {
    /// The API socket when neither --api-sock nor --no-api is given.
    public static let apiSocketPath = "/run/firecracker.socket"
    public static let instanceID = "anonymous-instance"
    /// Guest RAM when no machine-config says otherwise.
    public static let memoryMiB: UInt64 = 128
    /// Firecracker has no in-process reboot: a guest reset ends the VMM, which is what
    /// its users (Kata's reboot=k panic=1) rely on.
    public static let rebootOnReset = false
}

/// Parses one Firecracker flag at a time into a VMConfig; `finish` applies the rules that
/// join them.
struct FirecrackerFlags {
    /// The most a request body may be (--http-api-max-payload-size): the server holds a
    /// whole body in memory, per connection.
    static let maxAPIPayloadBytes = 16 << 20

    private(set) var noAPI = false
    /// Firecracker refuses a flag given twice; so do these.
    private var seen = Set<String>()

    /// Applies `flag` (its value from `value()`) to `config`: true if it is one of
    /// Firecracker's flags, false if not.
    mutating func apply(_ flag: String, to config: inout VMConfig,
                        value: () throws(SwiftletError) -> String) throws(SwiftletError) -> Bool {
        let name = flag == "--api-socket" ? "--api-sock" : flag
        switch name {
        case "--api-sock", "--id", "--config-file", "--no-api", "--log-path", "--level", "--module", "--show-level",
             "--show-log-origin", "--metrics-path", "--boot-timer", "--http-api-max-payload-size", "--no-seccomp",
             "--start-time-us", "--start-time-cpu-us", "--parent-cpu-time-us":
            guard seen.insert(name).inserted else { throw .invalidArgument("\(flag) is given twice") }
        default:
            if let reason = FirecrackerFlags.unsupported(name) { throw .invalidArgument("\(flag) is not supported: \(reason)") }
            return false
        }
        switch name {
        case "--api-sock": config.apiSocketPath = try RunOptions.nonEmpty(try value(), flag)
        case "--id":
            let id = try value()
            try VMConfig.validateInstanceID(id)
            config.instanceID = id
        case "--config-file": config.configFilePath = try RunOptions.nonEmpty(try value(), flag)
        case "--no-api": noAPI = true
        case "--log-path":
            let path = try RunOptions.nonEmpty(try value(), flag)
            updateLogger(&config) { $0.logPath = path }
        case "--level":
            let text = try value()
            guard let level = LogLevel(text) else { throw .invalidArgument("--level takes \(LogLevel.accepted), got '\(text)'") }
            updateLogger(&config) { $0.level = level }
        case "--module":
            let module = try RunOptions.nonEmpty(try value(), flag)
            updateLogger(&config) { $0.module = module }
        case "--show-level": updateLogger(&config) { $0.showLevel = true }
        case "--show-log-origin": updateLogger(&config) { $0.showLogOrigin = true }
        case "--metrics-path": config.metrics = MetricsConfig(path: try RunOptions.nonEmpty(try value(), flag))
        case "--boot-timer": config.bootTimer = true
        case "--http-api-max-payload-size":
            let text = try value()
            guard let bytes = Int(text), bytes >= 1, bytes <= FirecrackerFlags.maxAPIPayloadBytes else {
                throw .invalidArgument("--http-api-max-payload-size needs a size in bytes from 1 to \(FirecrackerFlags.maxAPIPayloadBytes), got '\(text)'")
            }
            config.apiMaxPayloadBytes = bytes
        case "--no-seccomp": config.seccomp = .off
        default:  // the jailer's start times
            let text = try value()
            guard let microseconds = UInt64(text) else { throw .invalidArgument("\(flag) needs a whole number of microseconds, got '\(text)'") }
            var times = config.processStartTimes ?? ProcessStartTimes()
            switch name {
            case "--start-time-us": times.startTimeUs = microseconds
            case "--start-time-cpu-us": times.startCPUTimeUs = microseconds
            default: times.parentCPUTimeUs = microseconds
            }
            config.processStartTimes = times
        }
        return true
    }

    /// The rules between flags, once all are read: --no-api needs a config file (the VM
    /// must be described somewhere) and wins over --api-sock, as in Firecracker; the
    /// `firecracker` dialect's API socket defaults to Firecracker's path.
    func finish(_ config: inout VMConfig, dialect: CommandLineDialect) throws(SwiftletError) {
        if noAPI {
            guard config.configFilePath != nil else {
                throw .invalidArgument("--no-api needs --config-file PATH: without the API, the config file describes the VM")
            }
            config.apiSocketPath = nil
        } else if dialect == .firecracker && config.apiSocketPath == nil {
            config.apiSocketPath = FirecrackerDefaults.apiSocketPath
        }
        if dialect == .firecracker && config.instanceID == nil { config.instanceID = FirecrackerDefaults.instanceID }
    }

    /// Firecracker flags Swiftlet knows and cannot honour, with the reason.
    static func unsupported(_ flag: String) -> String? {
        switch flag {
        case "--seccomp-filter":
            return "Firecracker's filter files are BPF compiled for Firecracker's threads and system calls, not Swiftlet's; leave it out (Swiftlet installs its own filter per thread; --no-seccomp turns them off)"
        case "--metadata", "--mmds-size-limit": return "Swiftlet has no MMDS (microVM metadata service)"
        case "--enable-pci": return "Swiftlet's virtio devices are virtio-mmio only"
        case "--snapshot-version", "--describe-snapshot": return "Swiftlet has no snapshots"
        default: return nil
        }
    }

    private func updateLogger(_ config: inout VMConfig, _ change: (inout LoggerConfig) -> Void) {
        var logger = config.logger ?? LoggerConfig()
        change(&logger)
        config.logger = logger
    }
}
