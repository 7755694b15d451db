/// `swiftlet jail` flags. Pure: every bad input is a one-line `invalidArgument` (exit 2),
/// unit-tested; JailCommand does the system calls.
public struct JailOptions: Equatable {
    public var id: String = ""
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    /// The executable copied into the jail and run there (default: this very binary).
    public var execFile: String?
    public var chrootBaseDir: String = JailOptions.defaultChrootBaseDir
    /// A network namespace to join (a /var/run/netns/NAME or /proc/PID/ns/net handle).
    public var netns: String?
    /// Where cgroup2 is mounted (default: found in /proc/self/mountinfo).
    public var cgroupRoot: String?
    /// No cgroup at all (hosts without a cgroup2 hierarchy); refused with limits.
    public var noCgroup = false
    /// Files written into the instance's group, in order.
    public var cgroupSettings: [CgroupSetting] = []
    public var rlimitNoFile: UInt64 = JailOptions.defaultNoFile
    /// RLIMIT_FSIZE; nil leaves the inherited limit (usually unlimited: disk images grow).
    public var rlimitFileSize: UInt64?
    public var allowRoot = false
    public var daemonize = false
    /// What follows `--`: `swiftlet run`'s arguments (Firecracker's, for an exec file named
    /// firecracker).
    public var runArguments: [String] = []

    public static let defaultChrootBaseDir = "/srv/jailer"
    /// Firecracker's jailer's default too.
    public static let defaultNoFile: UInt64 = 2048

    public init() {}

    public enum Parsed: Equatable {
        case jail(JailOptions)
        case help
    }

    public static let usage = """
    Usage: swiftlet jail --id ID --uid UID --gid GID [OPTIONS] -- RUN-ARGUMENTS...

    Run `swiftlet run RUN-ARGUMENTS` (Firecracker's jailer's job) confined: in a directory
    of its own as its root, in new mount and PID namespaces (the VMM is PID 1 there), in a
    cgroup v2 group of its own with the given limits, with rlimits, no inherited file
    descriptors or environment, as an unprivileged user. Must be started as root.

    What it does, in order: creates CHROOT-BASE/ID/root (owned by UID:GID; refused if it
    exists); puts the kernel, initrd and disk images named by --kernel, --initrd and
    --disk path=... (and by a --config-file's boot-source and drives) in it as hard links,
    or, on another filesystem, as bind mounts (read-only unless a writable disk), and
    rewrites those arguments to the in-jail paths (a config file is rewritten into the
    jail as /config.json); creates the parent directories of --api-sock, --log-path,
    --metrics-path, --audit-log and --vsock socket= there (those paths are the jail's);
    copies the exec file in; creates dev/kvm and dev/net/tun with the host's device
    numbers, owned by UID:GID; joins --netns; creates the group CGROUP2/swiftlet/ID with
    the limits (the controllers enabled above it); enters a new PID namespace, forks (the
    child is PID 1 of it), and in the child enters a new mount namespace, joins the group,
    makes all mounts private, bind-mounts the jail on itself and pivot_root()s into it
    (the old root is unmounted and removed); sets the rlimits, closes descriptors above 2,
    drops to UID:GID (no supplementary groups) and execs the exec file with an empty
    environment and `run` plus the rewritten arguments (and --id ID). A failure before the
    exec is reported by the jail itself, with --daemonize too. Paths given to the API
    later are resolved inside the jail.
    The jail stays in the foreground, forwards SIGTERM, SIGINT and SIGHUP to the VMM and
    exits with its status (128+N after signal N); the VMM's host PID is written to
    CHROOT-BASE/ID/swiftlet.pid. The jail directory and the cgroup are left for the
    caller to remove (rm -r CHROOT-BASE/ID; rmdir CGROUP2/swiftlet/ID).

    Options:
      --id ID                the instance: 1 to 64 letters, digits or '-' (also the
                             VMM's --id)
      --uid UID, --gid GID   the numeric user and group the VMM runs as
      --allow-root           accept uid or gid 0 (the VMM then runs as root: the jail
                             confines it much less)
      --exec-file PATH       the VMM executable to copy in and run (default: this
                             binary). It must be statically linked (ci/build-edge's
                             binaries are): nothing else is in the jail. Named
                             firecracker*, it gets Firecracker's command line (no `run`)
      --chroot-base-dir DIR  where jails are made (default \(defaultChrootBaseDir))
      --netns PATH           join this network namespace (setns) before the others
      --cgroup-root DIR      the cgroup2 mount (default: the first in /proc/self/mountinfo)
      --no-cgroup            make no cgroup (a host without cgroup2); refused with limits
      --cpu-max QUOTA[/PERIOD] | CPUS | max
                             cpu.max: QUOTA microseconds of CPU time per PERIOD (default
                             100000), or a number of CPUs with a decimal point (0.5 is
                             half a CPU: 50000 100000)
      --memory-max BYTES     memory.max, with a K, M, G or T suffix (e.g. 512M), or max;
                             beyond it the kernel's OOM killer ends the VMM alone
      --pids-max N           pids.max (threads count), or max
      --cgroup FILE=VALUE    any controller file of the group (Firecracker's flag, e.g.
                             cpu.weight=50; repeatable)
      --rlimit-nofile N      RLIMIT_NOFILE (default \(defaultNoFile))
      --rlimit-fsize BYTES   RLIMIT_FSIZE, K/M/G/T suffixes (default: inherited)
      --resource-limit no-file=N | fsize=BYTES
                             Firecracker's spelling of the two above
      --daemonize            detach: a new session, stdin/stdout/stderr on /dev/null,
                             and the jail exits 0 once the VMM is started
      --new-pid-ns           accepted (Firecracker's): the PID namespace is always new
      --cgroup-version 2     accepted (Firecracker's); version 1 is refused
      -h, --help             show this help

    Example:
      swiftlet jail --id vm1 --uid 1000 --gid 1000 --cpu-max 0.5 --memory-max 512M -- \\
          --kernel /images/Image --disk path=/images/root.img --api-sock /run/api.sock
      (the API socket is then /srv/jailer/vm1/root/run/api.sock on the host)

    Bad input exits 2 with one line; a failing system call exits 1 naming what failed.
    """

    /// Parses everything up to `--`; what follows is `runArguments`.
    public static func parse(_ arguments: [String]) throws(SwiftletError) -> Parsed {
        var options = JailOptions()
        var id: String?, uid: UInt32?, gid: UInt32?
        var cpuMax: String?, memoryMax: String?, pidsMax: String?
        var generic: [CgroupSetting] = []
        var sawSeparator = false
        var index = 0
        while index < arguments.count {
            var argument = arguments[index]
            if argument == "--" {
                options.runArguments = Array(arguments[(index + 1)...])
                sawSeparator = true
                break
            }
            var inlineValue: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                inlineValue = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
            }
            func value() throws(SwiftletError) -> String {
                if let inlineValue { return inlineValue }
                index += 1
                guard index < arguments.count, arguments[index] != "--" else {
                    throw .invalidArgument("\(argument) needs a value (see swiftlet jail --help)")
                }
                return arguments[index]
            }
            func flag() throws(SwiftletError) {
                if inlineValue != nil { throw .invalidArgument("\(argument) takes no value") }
            }
            switch argument {
            case "-h", "--help": return .help
            case "--id":
                let text = try value()
                guard isValidID(text) else {
                    throw .invalidArgument("--id needs 1 to 64 ASCII letters, digits or '-', got '\(text)'")
                }
                id = text
            case "--uid": uid = try parseID(try value(), flag: argument)
            case "--gid": gid = try parseID(try value(), flag: argument)
            case "--allow-root": try flag(); options.allowRoot = true
            case "--exec-file": options.execFile = try nonEmpty(try value(), argument)
            case "--chroot-base-dir":
                let dir = try nonEmpty(try value(), argument)
                guard dir.hasPrefix("/") else { throw .invalidArgument("--chroot-base-dir needs an absolute path, got '\(dir)'") }
                options.chrootBaseDir = dir
            case "--netns": options.netns = try nonEmpty(try value(), argument)
            case "--cgroup-root":
                let dir = try nonEmpty(try value(), argument)
                guard dir.hasPrefix("/") else { throw .invalidArgument("--cgroup-root needs an absolute path, got '\(dir)'") }
                options.cgroupRoot = dir
            case "--no-cgroup": try flag(); options.noCgroup = true
            case "--cpu-max": cpuMax = try JailCgroup.parseCPUMax(try value())
            case "--memory-max": memoryMax = try JailCgroup.parseMemoryMax(try value())
            case "--pids-max": pidsMax = try JailCgroup.parsePidsMax(try value())
            case "--cgroup": generic.append(try JailCgroup.parseSetting(try value()))
            case "--rlimit-nofile": options.rlimitNoFile = try parseNoFile(try value(), flag: argument)
            case "--rlimit-fsize": options.rlimitFileSize = try JailCgroup.parseBytes(try value(), flag: argument)
            case "--resource-limit":
                let text = try value()
                guard let equals = text.firstIndex(of: "=") else {
                    throw .invalidArgument("--resource-limit takes no-file=N or fsize=BYTES, got '\(text)'")
                }
                let key = String(text[..<equals]), number = String(text[text.index(after: equals)...])
                switch key {
                case "no-file": options.rlimitNoFile = try parseNoFile(number, flag: "--resource-limit no-file")
                case "fsize": options.rlimitFileSize = try JailCgroup.parseBytes(number, flag: "--resource-limit fsize")
                default: throw .invalidArgument("--resource-limit: unknown resource '\(key)' (no-file, fsize)")
                }
            case "--daemonize": try flag(); options.daemonize = true
            case "--new-pid-ns": try flag()
            case "--cgroup-version":
                let version = try value()
                guard version == "2" else {
                    throw .invalidArgument("--cgroup-version \(version): swiftlet jail uses cgroup v2 only")
                }
            case "--node":
                throw .invalidArgument("--node: swiftlet jail does not pin NUMA nodes (use --cgroup cpuset.cpus=... and cpuset.mems=...)")
            case "--parent-cgroup":
                throw .invalidArgument("--parent-cgroup: swiftlet jail's groups are always swiftlet/ID below the cgroup2 mount")
            default:
                if argument.hasPrefix("-") { throw .invalidArgument("unknown option \(argument) (see swiftlet jail --help)") }
                throw .invalidArgument("unexpected argument \(argument): swiftlet run's arguments go after -- (see swiftlet jail --help)")
            }
            index += 1
        }
        guard let id else { throw .invalidArgument("--id ID is required (see swiftlet jail --help)") }
        guard let uid else { throw .invalidArgument("--uid UID is required (see swiftlet jail --help)") }
        guard let gid else { throw .invalidArgument("--gid GID is required (see swiftlet jail --help)") }
        guard sawSeparator, !options.runArguments.isEmpty else {
            throw .invalidArgument("no VMM arguments: put swiftlet run's after --, e.g. -- --kernel Image (see swiftlet jail --help)")
        }
        if (uid == 0 || gid == 0) && !options.allowRoot {
            throw .invalidArgument("--\(uid == 0 ? "uid" : "gid") 0 would run the VMM as root, which defeats the jail: give an unprivileged id, or --allow-root to do it anyway")
        }
        options.id = id
        options.uid = uid
        options.gid = gid
        var settings: [CgroupSetting] = []
        if let cpuMax { settings.append(CgroupSetting(file: "cpu.max", value: cpuMax)) }
        if let memoryMax { settings.append(CgroupSetting(file: "memory.max", value: memoryMax)) }
        if let pidsMax { settings.append(CgroupSetting(file: "pids.max", value: pidsMax)) }
        for setting in generic {
            if settings.contains(where: { $0.file == setting.file }) {
                throw .invalidArgument("--cgroup \(setting.file) is given twice (or also by --cpu-max, --memory-max or --pids-max)")
            }
            settings.append(setting)
        }
        options.cgroupSettings = settings
        if options.noCgroup && !settings.isEmpty {
            throw .invalidArgument("--no-cgroup cannot go with \(settings[0].file) limits: they need a cgroup")
        }
        if options.noCgroup && options.cgroupRoot != nil {
            throw .invalidArgument("--no-cgroup and --cgroup-root contradict each other")
        }
        return .jail(options)
    }

    /// Firecracker's instance id rule, also `swiftlet run --id`'s.
    public static func isValidID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty && bytes.count <= 64 else { return false }
        return bytes.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 }
    }

    static func parseID(_ text: String, flag: String) throws(SwiftletError) -> UInt32 {
        // (uid_t)-1 means "unchanged" to setuid's relatives: never a real id.
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let number = UInt32(text), number != UInt32.max else {
            throw .invalidArgument("\(flag) takes a numeric id (0 to 4294967294), got '\(text)'")
        }
        return number
    }

    static func parseNoFile(_ text: String, flag: String) throws(SwiftletError) -> UInt64 {
        // The VMM needs its std streams, /dev/kvm, the VM and vCPU fds, eventfds and API
        // connections: fewer than 64 cannot boot anything.
        guard text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let number = UInt64(text), number >= 64, number <= 1 << 30 else {
            throw .invalidArgument("\(flag) takes a whole number from 64 to 1073741824, got '\(text)'")
        }
        return number
    }

    static func nonEmpty(_ value: String, _ flag: String) throws(SwiftletError) -> String {
        guard !value.isEmpty else { throw .invalidArgument("\(flag) needs a non-empty value") }
        return value
    }
}
