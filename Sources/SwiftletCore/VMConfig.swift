/// What a VM is made of: the CLI and (later) the API fill one in; a Machine builds from it.
public struct VMConfig: Equatable {
    public var kernelPath: String?
    public var initrdPath: String?
    public var cmdline: String?
    public var cpus: Int = 1
    public var memoryMiB: UInt64 = 256
    /// How guest RAM is backed (`--hugepages`, machine-config `huge_pages`).
    public var hugePages: HugePages = .none
    public var dumpDTBPath: String?
    public var apiSocketPath: String?
    /// What a guest's reset (PSCI SYSTEM_RESET, the i8042's reset line, a triple fault)
    /// does: boot the same configuration afresh in this process (a server's reset button),
    /// or end the VMM with status 0 (`--no-reboot`, what test suites and CI want).
    public var rebootOnReset = true
    /// `--stats`: exit and device access counts on stderr at exit.
    public var printStats = false
    /// arm64 vCPU features to enable (each only where KVM reports it).
    public var pmu = false
    public var sve = false
    public var pointerAuthentication = false
    /// virtio-blk disks, in the order the guest sees them (the first is vda).
    public var disks: [DiskConfig] = []
    /// A virtio-rng device fed from the host's getrandom.
    public var entropy = false
    public var entropyRateLimiter: RateLimiterConfig?
    /// virtio-net interfaces on taps, in the order the guest sees them (eth0 first).
    public var networkInterfaces: [NetworkInterfaceConfig] = []
    /// A virtio-vsock device with Firecracker's Unix-socket host side.
    public var vsock: VsockConfig?

    /// Firecracker's instance id (`--id`): GET / reports it, logs and metrics name it. nil:
    /// the command line's default (Firecracker's "anonymous-instance", or swiftlet-PID).
    public var instanceID: String?
    /// `--config-file`: a Firecracker JSON file describing the VM. Read by the executable
    /// (its parser is the API's), which fills in this configuration from it.
    public var configFilePath: String?
    /// machine-config `track_dirty_pages`: kept and reported; nothing uses dirty pages yet
    /// (they are for snapshots).
    public var trackDirtyPages = false
    /// The logger's configuration (`--log-path`, `--level`, …, PUT /logger).
    public var logger: LoggerConfig?
    /// The metrics writer's configuration (`--metrics-path`, PUT /metrics).
    public var metrics: MetricsConfig?
    /// `--boot-timer`: the boot-timer device, which reports the time from the process's (or
    /// the jailer's) start to the guest's first write of 123 to it.
    public var bootTimer = false
    /// `--seccomp` (`--no-seccomp`: off): the VMM's threads' seccomp filters.
    public var seccomp = SeccompMode.on
    /// `--seccomp-deny THREAD:SYSCALL`: calls taken off a thread kind's allow-list.
    public var seccompDenials: [SeccompDenial] = []
    /// `--http-api-max-payload-size`: the largest request body the API accepts.
    public var apiMaxPayloadBytes = VMConfig.defaultAPIMaxPayloadBytes
    /// `--api-allow uid=N|gid=N`: peers admitted to the API besides the VMM's own user.
    public var apiAllow: [APIPeerRule] = []
    /// `--audit-log PATH`: the audit trail's file (appended to) or named pipe.
    public var auditLogPath: String?
    /// The jailer's `--start-time-us`, `--start-time-cpu-us` and `--parent-cpu-time-us`.
    public var processStartTimes: ProcessStartTimes?

    public init() {}

    public static let maxCPUs = 512
    public static let minMemoryMiB: UInt64 = 2

    public var memoryBytes: UInt64 { memoryMiB << 20 }
    public static let maxDriveIDLength = 64
    public static let maxInterfaceIDLength = 64
    public static let maxInstanceIDLength = 64
    /// Request bodies up to 64 KiB: the largest (a drive with two rate limiters) is well
    /// under 1 KiB, and every connection may hold one.
    public static let defaultAPIMaxPayloadBytes = 64 * 1024

    /// Firecracker's instance ids: 1 to 64 letters, digits and '-' (ASCII here: the id ends
    /// up in file names, log lines and metrics).
    public static func validateInstanceID(_ id: String) throws(SwiftletError) {
        guard !id.isEmpty, id.utf8.count <= maxInstanceIDLength,
              id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D }) else {
            throw .invalidArgument("--id must be 1 to \(maxInstanceIDLength) letters, digits or '-', got '\(id)'")
        }
    }

    /// Adds a network interface, or replaces the one with its id (the API's PUT
    /// /network-interfaces).
    public mutating func setNetworkInterface(_ interface: NetworkInterfaceConfig) {
        if let index = networkInterfaces.firstIndex(where: { $0.id == interface.id }) {
            networkInterfaces[index] = interface
        } else {
            networkInterfaces.append(interface)
        }
    }

    /// Opens the kernel and the initrd (if any) for reading their headers and copying them
    /// into guest memory: the same step on every machine.
    public func openBootImages() throws(SwiftletError) -> (kernel: ImageFile, initrd: ImageFile?) {
        guard let kernelPath else { throw .invalidArgument("no kernel given (--kernel PATH)") }
        let kernel = try ImageFile.open(kernelPath, what: "kernel")
        let initrd = try initrdPath.map { (path) throws(SwiftletError) in try ImageFile.open(path, what: "initrd") }
        return (kernel, initrd)
    }

    /// Adds a disk, or replaces the one with its id (the API's PUT /drives). The root
    /// device goes first, so that it is /dev/vda.
    public mutating func setDisk(_ disk: DiskConfig) {
        if let index = disks.firstIndex(where: { $0.id == disk.id }) { disks.remove(at: index) }
        if disk.isRootDevice { disks.insert(disk, at: 0) } else { disks.append(disk) }
    }

    /// The kernel command line: the user's (or the machine's default), plus the root
    /// device when a disk is marked as root (Firecracker's is_root_device) and the line
    /// names none itself. The root disk is always the first, /dev/vda.
    public func bootArguments(default machineDefault: String) -> String {
        let base = cmdline ?? machineDefault
        guard let root = disks.first, root.isRootDevice, !base.hasPrefix("root="), !base.hasSubstring(" root=") else { return base }
        let device = root.partUUID.map { "root=PARTUUID=\($0)" } ?? "root=/dev/vda"
        return base + " " + device + (root.readOnly ? " ro" : " rw")
    }

    /// Checks sizes and counts that do not depend on the architecture.
    public func validate() throws(SwiftletError) {
        guard cpus >= 1, cpus <= VMConfig.maxCPUs else {
            throw .invalidArgument("--cpus must be between 1 and \(VMConfig.maxCPUs), got \(cpus)")
        }
        guard memoryMiB >= VMConfig.minMemoryMiB, memoryMiB <= (1 << 20) else {
            throw .invalidArgument("--memory must be between \(VMConfig.minMemoryMiB) MiB and 1 TiB, got \(memoryMiB) MiB")
        }
        if hugePages == .twoMiB {
            guard memoryMiB % 2 == 0 else {
                throw .invalidArgument("--hugepages 2M needs --memory in whole 2 MiB pages, got \(memoryMiB) MiB")
            }
        }
        for (index, disk) in disks.enumerated() {
            guard !disk.id.isEmpty, disk.id.utf8.count <= VMConfig.maxDriveIDLength else {
                throw .invalidArgument("disk id '\(disk.id)' must be 1 to \(VMConfig.maxDriveIDLength) characters")
            }
            if disks[..<index].contains(where: { $0.id == disk.id }) {
                throw .invalidArgument("disk id '\(disk.id)' is used twice")
            }
        }
        guard disks.filter({ $0.isRootDevice }).count <= 1 else { throw .invalidArgument("only one disk can be the root device") }
        if let vsock {
            guard vsock.guestCID >= VsockConfig.minGuestCID, vsock.guestCID <= VsockConfig.maxGuestCID else {
                throw .invalidArgument("vsock guest CID must be between \(VsockConfig.minGuestCID) and \(VsockConfig.maxGuestCID) (0-2 are reserved), got \(vsock.guestCID)")
            }
            guard !vsock.udsPath.isEmpty, vsock.udsPath.utf8.count <= VsockConfig.maxUDSPathLength, !vsock.udsPath.utf8.contains(0) else {
                throw .invalidArgument("vsock uds_path must be 1 to \(VsockConfig.maxUDSPathLength) bytes (a Unix socket path)")
            }
        }
        for (index, interface) in networkInterfaces.enumerated() {
            guard !interface.id.isEmpty, interface.id.utf8.count <= VMConfig.maxInterfaceIDLength else {
                throw .invalidArgument("network interface id '\(interface.id)' must be 1 to \(VMConfig.maxInterfaceIDLength) characters")
            }
            let earlier = networkInterfaces[..<index]
            if earlier.contains(where: { $0.id == interface.id }) {
                throw .invalidArgument("network interface id '\(interface.id)' is used twice")
            }
            if earlier.contains(where: { $0.tapName == interface.tapName }) {
                throw .invalidArgument("tap '\(interface.tapName)' is given to two network interfaces")
            }
            if let mac = interface.mac, earlier.contains(where: { $0.mac == mac }) {
                throw .invalidArgument("MAC address \(mac) is given to two network interfaces")
            }
        }
    }
}

/// When the process was started, as the jailer measured it (microseconds): the metrics
/// report the VMM's start-up time, and the boot timer the boot time, from them.
public struct ProcessStartTimes: Equatable {
    /// CLOCK_MONOTONIC at the jailer's start (`--start-time-us`).
    public var startTimeUs: UInt64?
    /// The process's CPU clock when the jailer exec'd the VMM (`--start-time-cpu-us`).
    public var startCPUTimeUs: UInt64?
    /// The jailer's own CPU time (`--parent-cpu-time-us`).
    public var parentCPUTimeUs: UInt64?

    public init(startTimeUs: UInt64? = nil, startCPUTimeUs: UInt64? = nil, parentCPUTimeUs: UInt64? = nil) {
        self.startTimeUs = startTimeUs
        self.startCPUTimeUs = startCPUTimeUs
        self.parentCPUTimeUs = parentCPUTimeUs
    }
}

/// One virtio-blk disk (CLI `--disk`, API `PUT /drives/{drive_id}`).
public struct DiskConfig: Equatable {
    /// drive_id: names the disk in the API, and is its serial (GET_ID) unless too long.
    public var id: String
    public var path: String
    public var readOnly = false
    /// API only: the guest's root device (root=/dev/vda is up to the boot arguments).
    public var isRootDevice = false
    public var partUUID: String?
    /// Firecracker's cache_type ("Unsafe" or "Writeback"), kept for GET /vm/config;
    /// Swiftlet offers the guest flushes and honours each one with fdatasync either way.
    public var cacheType: String?
    public var rateLimiter: RateLimiterConfig?

    public init(id: String, path: String, readOnly: Bool = false) {
        self.id = id
        self.path = path
        self.readOnly = readOnly
    }
}

/// One virtio-net interface (CLI `--net`, API `PUT /network-interfaces/{iface_id}`).
public struct NetworkInterfaceConfig: Equatable {
    /// iface_id: names the interface in the API.
    public var id: String
    /// host_dev_name: the tap interface on the host, which must exist.
    public var tapName: String
    /// guest_mac; a random locally administered address when not given.
    public var mac: MACAddress?
    /// What the guest receives and sends.
    public var rxRateLimiter: RateLimiterConfig?
    public var txRateLimiter: RateLimiterConfig?

    /// An interface's MTU below this is not offered to the guest (IPv4's minimum).
    public static let minimumMTU = 68
    /// IFNAMSIZ less the NUL.
    public static let maxTapNameLength = 15

    /// A name Linux accepts for a network interface (its dev_valid_name): 1 to 15 bytes, not
    /// "." or "..", no '/', ':', whitespace or control characters. Refused here, a bad name
    /// is a clear message (and one line) instead of a failure to open the tap.
    public static func isValidTapName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= maxTapNameLength, name != ".", name != ".." else { return false }
        return name.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: ":") }
    }

    public init(id: String, tapName: String, mac: MACAddress? = nil) {
        self.id = id
        self.tapName = tapName
        self.mac = mac
    }
}

/// The vsock device (CLI `--vsock`, API `PUT /vsock`).
public struct VsockConfig: Equatable {
    /// guest_cid: the guest's address; 0-2 are reserved (2 is the host).
    public var guestCID: UInt64
    /// uds_path: the Unix socket host processes connect to (`CONNECT <port>\n`); the
    /// guest's connections to host port P go to `<uds_path>_P`. It must not exist yet.
    public var udsPath: String

    public static let minGuestCID: UInt64 = 3
    public static let maxGuestCID: UInt64 = UInt64(UInt32.max) - 1
    /// sun_path holds 108 bytes with the NUL; `_P` suffixes must fit too, so a little less.
    public static let maxUDSPathLength = 96

    public init(guestCID: UInt64, udsPath: String) {
        self.guestCID = guestCID
        self.udsPath = udsPath
    }
}
