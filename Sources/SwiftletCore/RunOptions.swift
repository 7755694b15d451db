/// `swiftlet run` flags → VMConfig. Pure, so every bad input is unit-tested.
public enum RunOptions {
    public static let usage = """
    Usage: swiftlet run --kernel PATH [OPTIONS]

    Boot a Linux kernel (or a raw binary) in a new KVM virtual machine. The guest console is
    this terminal; the guest powering off ends swiftlet with status 0. A guest reboot
    (or reset) boots the same configuration again in this process: fresh vCPUs, guest RAM,
    kernel, initrd, device tree and devices.

    Options:
      --kernel PATH        kernel to boot: arm64 Image or raw binary (arm64), bzImage or raw
                           binary (x86_64)
      --initrd PATH        initial ramdisk
      --cmdline STRING     kernel command line
      --cpus N             number of vCPUs, one thread each (default 1)
      --memory MIB         guest RAM in MiB (default 256); also accepts a K, M or G suffix
      --hugepages 2M       back guest RAM with the host's reserved 2 MiB hugetlbfs pages
                           (/proc/sys/vm/nr_hugepages); without it, plain memory placed
                           and advised for transparent huge pages
      --disk path=FILE[,readonly=on][,id=ID][,LIMITS]
                           a virtio-blk disk on a raw image file or block device
                           (repeatable: the first is /dev/vda); opened exclusively when
                           writable; ID is its serial and API drive_id (default diskN)
      --net tap=NAME[,mac=MAC][,id=ID][,rx_LIMITS][,tx_LIMITS]
                           a virtio-net interface on the existing tap NAME (repeatable:
                           the first is eth0); MAC defaults to a random local address;
                           ID is its API iface_id (default netN)
      --vsock cid=N,socket=PATH
                           a virtio-vsock device: the guest's CID (3 or more); host
                           processes connect to the Unix socket PATH (created here, must
                           not exist) and write "CONNECT <port>\\n"; the guest's
                           connections to host port P go to PATH_P
      --rng[=LIMITS]       a virtio-rng device fed from the host's getrandom

    Rate limits (LIMITS: comma-separated, Firecracker's token buckets; rx_/tx_ prefixed
    on --net, e.g. rx_bw_size=10M,rx_bw_refill_time=1000):
    \(RateLimiterOptions.help)
      --dump-dtb PATH      write the generated device tree (arm64) to PATH and exit
      --api-socket PATH    serve the control API on a Unix socket at PATH; without
                           --kernel or --config-file, wait to be configured through it
      --api-allow uid=N|gid=N
                           also admit API clients of user N, or whose effective group
                           is N (repeatable); the socket is then connectable by all
                           (0666) and each connection's SO_PEERCRED is checked. Without
                           it the socket is owner-only (0600) and only the VMM's own
                           user is admitted. A refused client gets 403
      --audit-log PATH     append a JSON line per API request (who: pid, uid, gid;
                           what: method, path, status, old -> new configuration,
                           action), per refused client, per VM lifecycle event and
                           per seccomp violation to PATH (a file, created 0600, or a
                           named pipe); never waits for it: lines it cannot take are
                           dropped and counted at exit
      --no-reboot          a guest reboot ends swiftlet with status 0 instead
      --stats              at exit, print the VM's exits by kind and each device's
                           reads and writes (of the last boot) on stderr
      --seccomp MODE       on (default): each thread of the VMM runs under a seccomp
                           allow-list of its own, and a call outside it kills the
                           process (SIGSYS) with a line naming the thread and the call;
                           off: no filters; log: the kernel logs such calls (dmesg,
                           audit type=1326) and lets them through
      --seccomp-deny THREAD:SYSCALL
                           take SYSCALL off the allow-list of THREAD (main, vcpu, io,
                           console, writer); repeatable. write stays allowed
      --pmu                arm64: give the guest a PMUv3 (needs KVM_CAP_ARM_PMU_V3)
      --sve                arm64: give the guest SVE (needs KVM_CAP_ARM_SVE)
      --pauth              arm64: give the guest pointer authentication
                           (needs KVM_CAP_ARM_PTRAUTH_ADDRESS and _GENERIC)
      --version            print the version
      -h, --help           show this help

    Firecracker's flags (when this binary runs as `firecracker`, its whole command line):
    \(firecrackerFlagsHelp)

    Console and signals:
      When stdin is a terminal it is put in raw mode (restored on exit) and Ctrl-A x quits;
      Ctrl-A Ctrl-A sends a Ctrl-A. SIGTERM presses the guest's power button (arm64: the
      gpio-keys power key; x86_64: Ctrl-Alt-Del) and allows 30 s to power off; SIGINT,
      SIGHUP or a second SIGTERM stop at once. Bad input exits 2, VMM errors 1.
    """

    /// Firecracker's flags, for both usages.
    static let firecrackerFlagsHelp = """
      --api-sock PATH      serve the API on this Unix socket (the same as --api-socket)
      --config-file PATH   a Firecracker JSON configuration (boot-source, machine-config,
                           drives, network-interfaces, vsock, entropy, logger, metrics):
                           the VM starts from it at once, with no API call; it replaces
                           the flags that describe the VM (--kernel, --disk, ...)
      --no-api             serve no API (needs --config-file)
      --id ID              the instance id (1 to 64 letters, digits or '-')
      --log-path PATH      the log's file (appended to) or named pipe, in Firecracker's
                           line layout, at Info unless --level says otherwise
      --level LEVEL        the log level: \(LogLevel.accepted); without
                           --log-path the lines go to stderr. With neither (nor a
                           "logger" in the config file or PUT /logger) nothing is
                           logged: stderr keeps its one line per event
      --module PATH        log only the messages of this module (e.g. VMM/)
      --show-level         put the level in each log line
      --show-log-origin    put the source file and line in each log line
      --metrics-path PATH  the metrics' file or named pipe: a JSON line every 60 s, at
                           start, on FlushMetrics and at exit
      --boot-timer         the boot-timer device, at x86_64: 0xD0000000 (Firecracker's
                           address), arm64: 0x0B000000 (Firecracker's is RAM here): the
                           guest's first write of the byte 123 there (e.g. busybox
                           `devmem ADDR 8 123`) prints "swiftlet: Guest-boot-time = N us
                           N ms, N CPU us N CPU ms" on stderr, the time since the process
                           (or the jailer) started, and logs it at Info with --log-path
      --http-api-max-payload-size BYTES
                           the largest API request body (default \(VMConfig.defaultAPIMaxPayloadBytes))
      --no-seccomp         no seccomp filters (the same as --seccomp off)
      --start-time-us US, --start-time-cpu-us US, --parent-cpu-time-us US
                           the jailer's start times, for the metrics and the boot timer
      Refused, with the reason: --seccomp-filter (Firecracker's compiled filters),
      --metadata and --mmds-size-limit (no MMDS), --enable-pci (virtio-mmio only),
      --snapshot-version and --describe-snapshot (no snapshots).
    """

    /// `firecracker --help`.
    public static let firecrackerUsage = """
    Usage: firecracker [OPTIONS] [-- IGNORED...]

    This is Swiftlet, a KVM virtual machine monitor, run under the name firecracker: it takes
    Firecracker's command line and serves Firecracker's API, so Firecracker's tools drive it.
    Without --config-file it waits to be configured through the API socket (by default
    \(FirecrackerDefaults.apiSocketPath)). Other defaults are Firecracker's too: instance id
    \(FirecrackerDefaults.instanceID), \(FirecrackerDefaults.memoryMiB) MiB of guest RAM, and a guest reboot
    ends the VMM (status 0). Bad input exits 2, VMM errors 1.

    Options:
    \(firecrackerFlagsHelp)
      --version            print Firecracker's version line (the API version Swiftlet
                           speaks), then Swiftlet's
      -h, --help           show this help
    """

    public enum Parsed: Equatable {
        case run(VMConfig)
        case help
        case version
    }

    /// Swiftlet's flags that shape the VM: a config file does that instead, so they do not
    /// go with --config-file (one description of the VM, not two to merge).
    static let vmShapeFlags: Set<String> = ["--kernel", "--initrd", "--cmdline", "--cpus", "--memory", "--hugepages",
                                            "--disk", "--net", "--vsock", "--rng"]

    /// `arguments` (without the program name) as `dialect` reads them: `swiftlet run`'s
    /// flags and Firecracker's, or (`.firecracker`) Firecracker's alone, with its defaults,
    /// its --help and --version anywhere, and what follows a `--` left to other programs.
    public static func parse(_ arguments: [String], dialect: CommandLineDialect = .swiftlet) throws(SwiftletError) -> Parsed {
        var arguments = arguments
        var config = VMConfig()
        if dialect == .firecracker {
            if let separator = arguments.firstIndex(of: "--") { arguments = Array(arguments[..<separator]) }
            if arguments.contains("--help") || arguments.contains("-h") { return .help }
            if arguments.contains("--version") { return .version }
            config.memoryMiB = FirecrackerDefaults.memoryMiB
            config.rebootOnReset = FirecrackerDefaults.rebootOnReset
        }
        var firecracker = FirecrackerFlags()
        var shapedBy: String?
        var index = 0
        func value(_ flag: String) throws(SwiftletError) -> String {
            index += 1
            guard index < arguments.count else { throw .invalidArgument("\(flag) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            var argument = arguments[index]
            var inlineValue: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                inlineValue = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
            }
            func next() throws(SwiftletError) -> String {
                if let inlineValue { return inlineValue }
                return try value(argument)
            }
            if try firecracker.apply(argument, to: &config, value: next) {
                index += 1
                continue
            }
            guard dialect == .swiftlet else {
                if argument.hasPrefix("-") { throw .invalidArgument("unknown option \(argument) (Firecracker's command line: see firecracker --help)") }
                throw .invalidArgument("unexpected argument \(argument) (Firecracker's command line: see firecracker --help)")
            }
            if vmShapeFlags.contains(argument) { shapedBy = shapedBy ?? argument }
            switch argument {
            case "-h", "--help": return .help
            case "--version": return .version
            case "--kernel": config.kernelPath = try nonEmpty(try next(), argument)
            case "--initrd": config.initrdPath = try nonEmpty(try next(), argument)
            case "--cmdline": config.cmdline = try next()
            case "--cpus": config.cpus = try parseCount(try next(), flag: argument)
            case "--memory": config.memoryMiB = try parseMiB(try next())
            case "--hugepages":
                let size = try next()
                switch size {
                case "2M": config.hugePages = .twoMiB
                case "none": config.hugePages = .none
                default: throw .invalidArgument("--hugepages takes 2M or none, got '\(size)'")
                }
            case "--dump-dtb": config.dumpDTBPath = try nonEmpty(try next(), argument)
            case "--disk": config.disks.append(try parseDisk(try next(), index: config.disks.count))
            case "--net": config.networkInterfaces.append(try parseNet(try next(), index: config.networkInterfaces.count))
            case "--vsock": config.vsock = try parseVsock(try next())
            case "--rng":
                config.entropy = true
                if let inlineValue { config.entropyRateLimiter = try parseLimits(inlineValue, flag: "--rng") }
            case "--no-reboot": config.rebootOnReset = false
            case "--stats": config.printStats = true
            case "--seccomp":
                let mode = try next()
                guard let parsed = SeccompMode(rawValue: mode) else {
                    throw .invalidArgument("--seccomp takes on, off or log, got '\(mode)'")
                }
                config.seccomp = parsed
            case "--seccomp-deny": config.seccompDenials.append(try SeccompDenial.parse(try next()))
            case "--api-allow":
                let rule = try APIPeerRule.parse(try next())
                if !config.apiAllow.contains(rule) { config.apiAllow.append(rule) }
            case "--audit-log": config.auditLogPath = try nonEmpty(try next(), argument)
            case "--pmu": config.pmu = true
            case "--sve": config.sve = true
            case "--pauth": config.pointerAuthentication = true
            default:
                if argument.hasPrefix("-") { throw .invalidArgument("unknown option \(argument) (see swiftlet run --help)") }
                throw .invalidArgument("unexpected argument \(argument) (see swiftlet run --help)")
            }
            index += 1
        }
        try firecracker.finish(&config, dialect: dialect)
        if config.configFilePath != nil, let shapedBy {
            throw .invalidArgument("\(shapedBy) cannot be combined with --config-file: the config file describes the VM")
        }
        if !config.apiAllow.isEmpty && config.apiSocketPath == nil {
            throw .invalidArgument("--api-allow needs an API socket (--api-socket PATH)")
        }
        if config.kernelPath == nil && config.apiSocketPath == nil && config.configFilePath == nil {
            throw .invalidArgument("--kernel PATH is required, or --config-file PATH, or --api-socket PATH to configure the VM through the API (see swiftlet run --help)")
        }
        try config.validate()
        return .run(config)
    }

    /// `path=FILE[,readonly=on|off][,id=ID]` (Cloud Hypervisor's shape).
    static func parseDisk(_ text: String, index: Int) throws(SwiftletError) -> DiskConfig {
        var path: String?
        var readOnly = false
        var id = "disk\(index)"
        var limiter: RateLimiterConfig?
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = item.firstIndex(of: "=") else {
                throw .invalidArgument("--disk: expected key=value, got '\(item)' (see swiftlet run --help)")
            }
            let key = String(item[..<equals]), value = String(item[item.index(after: equals)...])
            switch key {
            case "path": path = try nonEmpty(value, "--disk path")
            case "readonly":
                switch value {
                case "on", "true": readOnly = true
                case "off", "false": readOnly = false
                default: throw .invalidArgument("--disk readonly= takes on or off, got '\(value)'")
                }
            case "id": id = try nonEmpty(value, "--disk id")
            default:
                guard try RateLimiterOptions.apply(key: key, value: value, prefix: "", to: &limiter) else {
                    throw .invalidArgument("--disk: unknown key '\(key)' (path, readonly, id, bw_*, ops_*)")
                }
            }
        }
        guard let path else { throw .invalidArgument("--disk needs path=FILE") }
        if let limiter { try RateLimiterOptions.validate(limiter, what: "--disk") }
        var disk = DiskConfig(id: id, path: path, readOnly: readOnly)
        disk.rateLimiter = limiter
        return disk
    }

    /// `tap=NAME[,mac=MAC][,id=ID]`.
    static func parseNet(_ text: String, index: Int) throws(SwiftletError) -> NetworkInterfaceConfig {
        var tap: String?
        var mac: MACAddress?
        var id = "net\(index)"
        var rx: RateLimiterConfig?, tx: RateLimiterConfig?
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = item.firstIndex(of: "=") else {
                throw .invalidArgument("--net: expected key=value, got '\(item)' (see swiftlet run --help)")
            }
            let key = String(item[..<equals]), value = String(item[item.index(after: equals)...])
            switch key {
            case "tap":
                guard NetworkInterfaceConfig.isValidTapName(value) else {
                    throw .invalidArgument("--net tap= needs an interface name of 1 to \(NetworkInterfaceConfig.maxTapNameLength) characters, without '/', ':' or spaces")
                }
                tap = value
            case "mac":
                guard let address = MACAddress(value), address.isValidUnicast else {
                    throw .invalidArgument("--net mac= needs a unicast address like 06:00:0a:00:02:02, got '\(value)'")
                }
                mac = address
            case "id": id = try nonEmpty(value, "--net id")
            default:
                var known = try RateLimiterOptions.apply(key: key, value: value, prefix: "rx_", to: &rx)
                if !known { known = try RateLimiterOptions.apply(key: key, value: value, prefix: "tx_", to: &tx) }
                guard known else {
                    throw .invalidArgument("--net: unknown key '\(key)' (tap, mac, id, rx_bw_*, rx_ops_*, tx_bw_*, tx_ops_*)")
                }
            }
        }
        guard let tap else { throw .invalidArgument("--net needs tap=NAME") }
        if let rx { try RateLimiterOptions.validate(rx, what: "--net", prefix: "rx_") }
        if let tx { try RateLimiterOptions.validate(tx, what: "--net", prefix: "tx_") }
        var interface = NetworkInterfaceConfig(id: id, tapName: tap, mac: mac)
        interface.rxRateLimiter = rx
        interface.txRateLimiter = tx
        return interface
    }

    /// `cid=N,socket=PATH` (Firecracker's guest_cid and uds_path).
    static func parseVsock(_ text: String) throws(SwiftletError) -> VsockConfig {
        var cid: UInt64?, socket: String?
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = item.firstIndex(of: "=") else {
                throw .invalidArgument("--vsock: expected key=value, got '\(item)' (see swiftlet run --help)")
            }
            let key = String(item[..<equals]), value = String(item[item.index(after: equals)...])
            switch key {
            case "cid":
                guard let number = UInt64(value) else { throw .invalidArgument("--vsock cid= needs a whole number, got '\(value)'") }
                cid = number
            case "socket": socket = try nonEmpty(value, "--vsock socket")
            default: throw .invalidArgument("--vsock: unknown key '\(key)' (cid, socket)")
            }
        }
        guard let cid else { throw .invalidArgument("--vsock needs cid=N") }
        guard let socket else { throw .invalidArgument("--vsock needs socket=PATH") }
        return VsockConfig(guestCID: cid, udsPath: socket)
    }

    /// `KEY=VALUE[,...]` of rate-limiter keys only (--rng=...).
    static func parseLimits(_ text: String, flag: String) throws(SwiftletError) -> RateLimiterConfig? {
        var limiter: RateLimiterConfig?
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = item.firstIndex(of: "=") else {
                throw .invalidArgument("\(flag): expected key=value, got '\(item)' (see swiftlet run --help)")
            }
            let key = String(item[..<equals]), value = String(item[item.index(after: equals)...])
            guard try RateLimiterOptions.apply(key: key, value: value, prefix: "", to: &limiter) else {
                throw .invalidArgument("\(flag): unknown key '\(key)' (bw_*, ops_*)")
            }
        }
        if let limiter { try RateLimiterOptions.validate(limiter, what: flag) }
        return limiter
    }

    static func nonEmpty(_ value: String, _ flag: String) throws(SwiftletError) -> String {
        guard !value.isEmpty else { throw .invalidArgument("\(flag) needs a non-empty value") }
        return value
    }

    static func parseCount(_ text: String, flag: String) throws(SwiftletError) -> Int {
        guard let value = Int(text), value > 0 else {
            throw .invalidArgument("\(flag) needs a positive whole number, got '\(text)'")
        }
        return value
    }

    /// MiB by default; K, M, G suffixes (binary units) as QEMU and kvmtool accept.
    public static func parseMiB(_ text: String) throws(SwiftletError) -> UInt64 {
        var digits = text
        var shift: UInt64 = 20
        if let last = text.last, !last.isNumber {
            digits = String(text.dropLast())
            switch last {
            case "K", "k": shift = 10
            case "M", "m": shift = 20
            case "G", "g": shift = 30
            default: throw .invalidArgument("--memory: unknown unit '\(last)' in '\(text)' (use K, M or G)")
            }
        }
        guard let number = UInt64(digits), number > 0, number <= (1 << 40) >> shift else {
            throw .invalidArgument("--memory needs a positive size in MiB, got '\(text)'")
        }
        let bytes = number << shift
        guard bytes % (1 << 20) == 0 else { throw .invalidArgument("--memory must be a whole number of MiB, got '\(text)'") }
        return bytes >> 20
    }
}
