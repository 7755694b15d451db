import API
import CLinux
import SwiftletCore

/// `swiftlet jail`: the jailer's job (Firecracker's jailer is the model). Builds the jail
/// directory from a JailPlan, makes the cgroup, enters the namespaces and execs the VMM
/// as an unprivileged user. The flags and every path decision are JailOptions' and
/// JailPlan's (unit-tested); this file makes the system calls, in order.
enum JailCommand {
    static func main(_ arguments: [String]) -> Int32 {
        do {
            switch try JailOptions.parse(arguments) {
            case .help:
                print(JailOptions.usage)
                return 0
            case .jail(let options):
                return try jail(options)
            }
        } catch {
            printError("swiftlet jail: \(error)")
            return error.isBadInput ? 2 : 1
        }
    }

    static func jail(_ options: JailOptions) throws(SwiftletError) -> Int32 {
        // Nothing the caller left open may reach the VMM (ours are all close-on-exec).
        guard sl_close_from(3) == 0 else { throw .lastSystemError("closing inherited file descriptors") }
        // What the jail creates has the modes given here, whatever the caller's umask.
        umask(0o022)
        guard geteuid() == 0 else {
            throw .unsupported("swiftlet jail must be started as root (it makes device nodes, namespaces and cgroups, then drops to --uid/--gid)")
        }
        let cwd = try currentDirectory()
        var execFile = options.execFile ?? ""
        if options.execFile == nil { execFile = try readLink("/proc/self/exe") }
        let execPath = JailPlan.absolute(execFile, cwd: cwd)
        try checkExecFile(execPath)
        var plan = try JailPlan.make(options, execPath: execPath, cwd: cwd)
        var config: [UInt8]?
        if let path = plan.configFile {
            let bytes = try readFile(path, what: "config file", maxBytes: ConfigFile.maxBytes)
            config = try JailConfigFile.rewrite(bytes, plan: &plan, cwd: cwd)
        }
        // Everything the jail will hold must exist before anything is made.
        var kinds: [FileKind] = []
        for file in plan.files { kinds.append(try fileKind(file)) }
        let kvm = try deviceNumber("/dev/kvm", what: "KVM (/dev/kvm)")
        var tun: UInt64?
        if exists("/dev/net/tun") { tun = try deviceNumber("/dev/net/tun", what: "/dev/net/tun") }
        if plan.needsTun && tun == nil { throw .unsupported("--net needs /dev/net/tun, which this host lacks (load the tun module)") }
        let cgroup = options.noCgroup ? nil : try cgroupRoot(options)

        // The jail directory.
        guard !exists(plan.instanceDirectory) else {
            throw .invalidArgument("\(plan.instanceDirectory) exists already (an earlier instance with id \(options.id)?): remove it, or choose another --id")
        }
        try makeDirectories(options.chrootBaseDir)
        try makeDirectory(plan.instanceDirectory, mode: 0o755)
        try makeDirectory(plan.root, mode: 0o755)
        try changeOwner(plan.root, options)
        try makeDirectory(plan.root + "/dev", mode: 0o755)
        try makeDevice(plan.root + "/dev/kvm", number: kvm, block: false, mode: 0o600, options)
        if let tun {
            try makeDirectory(plan.root + "/dev/net", mode: 0o755)
            try makeDevice(plan.root + "/dev/net/tun", number: tun, block: false, mode: 0o600, options)
        }
        var bindMounts: [JailFile] = []
        for (file, kind) in zip(plan.files, kinds) {
            let target = plan.root + file.jailPath
            switch kind {
            case .blockDevice(let number):
                try makeDevice(target, number: number, block: true, mode: file.writable ? 0o600 : 0o400, options)
            case .regular:
                if link(file.hostPath, target) != 0 {
                    // Another filesystem (EXDEV) or links refused: the file is bind-mounted
                    // onto a placeholder once the jail has its own mount namespace.
                    try writeNewFile(target, [], mode: 0o600)
                    bindMounts.append(file)
                }
            }
        }
        if let config { try writeNewFile(plan.root + JailPlan.configJailPath, config, mode: 0o644) }
        for directory in plan.hostDirectories where !exists(directory) {
            try makeDirectory(directory, mode: 0o755)
            try changeOwner(directory, options)
        }
        try copyFile(execPath, to: plan.root + "/" + plan.execName, mode: 0o755)

        // The cgroup: made and limited here, joined by the VMM's process after the fork.
        var group: String?
        if let cgroup {
            group = try makeCgroup(root: cgroup, id: options.id, settings: options.cgroupSettings)
        }
        if let netns = options.netns {
            let fd = sl_open(netns, O_RDONLY)
            guard fd >= 0 else { throw .invalidArgument("cannot open --netns \(netns): \(SwiftletError.errnoString(sl_errno()))") }
            defer { close(fd) }
            let result = sl_setns(fd, SL_CLONE_NEWNET)
            guard result == 0 else {
                throw .system("joining the network namespace \(netns) (setns)", errno: -result)
            }
        }
        // The PID namespace is the next child's; the mount namespace is made by the child
        // itself, so that its root change leaves this process's root alone.
        let result = sl_unshare(SL_CLONE_NEWPID)
        guard result == 0 else { throw .system("a new PID namespace (unshare)", errno: -result) }
        // The child's failure before its exec comes back through this pipe (its stderr may be
        // /dev/null by then); a successful exec closes it empty (close-on-exec).
        var report: [Int32] = [-1, -1]
        let piped = sl_pipe_cloexec(&report)
        guard piped == 0 else { throw .system("creating the start-up report pipe", errno: -piped) }
        let child = sl_fork()
        guard child >= 0 else { throw .lastSystemError("fork into the new PID namespace") }
        if child == 0 {
            // PID 1 of the new namespace: set up and exec, or say what failed and exit.
            close(report[0])
            do {
                try enter(plan, options, group: group, bindMounts: bindMounts)
            } catch {
                let line = Array("swiftlet jail: \(error)".utf8)
                _ = line.withUnsafeBytes { write(report[1], $0.baseAddress, $0.count) }
                exit(error.isBadInput ? 2 : 1)
            }
        }
        close(report[1])
        try writeNewFile(plan.instanceDirectory + "/swiftlet.pid", Array("\(child)\n".utf8), mode: 0o644)
        let failure = readToEnd(report[0], maxBytes: 4096)?.bytes ?? []
        close(report[0])
        if !failure.isEmpty {
            printError(String(decoding: failure, as: UTF8.self))
            let status = sl_wait_forwarding(child)
            return status > 0 ? status : 1
        }
        // Started: with --daemonize the jail's work is done; else it waits for the VMM.
        if options.daemonize { return 0 }
        let status = sl_wait_forwarding(child)
        guard status >= 0 else { throw .system("waiting for the VMM (pid \(child))", errno: -status) }
        return status
    }

    /// In the forked child (PID 1 of the new PID namespace): join the group, switch the
    /// root, limit, drop privileges, exec. Returns only by throwing.
    static func enter(_ plan: JailPlan, _ options: JailOptions, group: String?, bindMounts: [JailFile]) throws(SwiftletError) {
        var result = sl_unshare(SL_CLONE_NEWNS)
        guard result == 0 else { throw .system("a new mount namespace (unshare)", errno: -result) }
        if let group { try writeExisting(group + "/cgroup.procs", "0") }
        if options.daemonize {
            result = sl_daemonize_streams()
            guard result == 0 else { throw .system("detaching (setsid, /dev/null)", errno: -result) }
        }
        result = sl_mount_private_recursive("/")
        guard result == 0 else { throw .system("making the mounts private", errno: -result) }
        result = sl_mount_bind(plan.root, plan.root, 0)
        guard result == 0 else { throw .system("bind-mounting \(plan.root) on itself", errno: -result) }
        for file in bindMounts {
            result = sl_mount_bind(file.hostPath, plan.root + file.jailPath, file.writable ? 0 : 1)
            guard result == 0 else { throw .system("bind-mounting the \(file.what) \(file.hostPath) into the jail", errno: -result) }
        }
        guard chdir(plan.root) == 0 else { throw .lastSystemError("chdir \(plan.root)") }
        try makeDirectory("old_root", mode: 0o700)
        result = sl_pivot_root(".", "old_root")
        if result == -EINVAL, let mounts = try? readFile("/proc/self/mountinfo", what: "mount table", maxBytes: 4 << 20),
           JailPlan.rootIsInitramfs(mountinfo: String(decoding: mounts, as: UTF8.self)) {
            // / is the initial ramfs, which pivot_root cannot move: the jail's mount goes
            // onto / and the process chroots into it, as switch_root does. The ramfs stays
            // beneath, out of reach once the VMM is no longer root (no CAP_SYS_CHROOT).
            guard rmdir("old_root") == 0 else { throw .lastSystemError("removing old_root") }
            result = sl_mount_move(".", "/")
            guard result == 0 else { throw .system("moving the jail's mount onto / (the root is the initramfs)", errno: -result) }
            guard chroot(".") == 0 else { throw .lastSystemError("chroot into \(plan.root)") }
            guard chdir("/") == 0 else { throw .lastSystemError("chdir / in the jail") }
        } else {
            guard result == 0 else { throw .system("pivot_root into \(plan.root)", errno: -result) }
            guard chdir("/") == 0 else { throw .lastSystemError("chdir / in the jail") }
            result = sl_umount_detach("/old_root")
            guard result == 0 else { throw .system("unmounting the old root", errno: -result) }
            guard rmdir("/old_root") == 0 else { throw .lastSystemError("removing /old_root") }
        }
        result = sl_set_rlimit(SL_RLIMIT_NOFILE, options.rlimitNoFile)
        guard result == 0 else { throw .system("setting RLIMIT_NOFILE to \(options.rlimitNoFile)", errno: -result) }
        if let size = options.rlimitFileSize {
            result = sl_set_rlimit(SL_RLIMIT_FSIZE, size)
            guard result == 0 else { throw .system("setting RLIMIT_FSIZE to \(size)", errno: -result) }
        }
        var arguments = plan.arguments
        // The jailer's start, as Firecracker's jailer passes it: the VMM's start-up metrics
        // and boot timer then count the jail's work too.
        if !arguments.contains(where: { $0.hasPrefix("--start-time-us") }) {
            let at = arguments.firstIndex(of: "--") ?? arguments.count
            arguments.insert(contentsOf: ["--start-time-us", "\(sl_process_start_monotonic_ns() / 1000)",
                                          "--start-time-cpu-us", "\(sl_process_cpu_us())"], at: at)
        }
        var step: UnsafePointer<CChar>?
        result = sl_drop_privileges(options.uid, options.gid, &step)
        guard result == 0 else {
            throw .system("switching to uid \(options.uid) gid \(options.gid) (\(step.map { String(cString: $0) } ?? "?"))", errno: -result)
        }
        sl_reset_signals()
        var argv: [UnsafeMutablePointer<CChar>?] = []
        for argument in arguments { argv.append(strdup(argument)) }
        argv.append(nil)
        result = argv.withUnsafeBufferPointer { sl_exec_clean("/" + plan.execName, $0.baseAddress!) }
        throw .system("executing /\(plan.execName) in the jail", errno: -result)
    }

    // MARK: cgroup v2

    static func cgroupRoot(_ options: JailOptions) throws(SwiftletError) -> String {
        if let root = options.cgroupRoot {
            guard exists(root + "/cgroup.procs") else {
                throw .invalidArgument("--cgroup-root \(root) is not a cgroup2 mount (no cgroup.procs there)")
            }
            guard exists(root + "/cgroup.subtree_control") else {
                throw .invalidArgument("--cgroup-root \(root) is a cgroup v1 hierarchy: swiftlet jail needs cgroup2")
            }
            return root
        }
        let mountinfo = try readFile("/proc/self/mountinfo", what: "mount table", maxBytes: 4 << 20)
        guard let root = JailCgroup.cgroup2MountPoint(mountinfo: String(decoding: mountinfo, as: UTF8.self)) else {
            throw .unsupported("no cgroup2 hierarchy is mounted: mount one (mount -t cgroup2 none /sys/fs/cgroup) and name it with --cgroup-root if elsewhere, or pass --no-cgroup")
        }
        return root
    }

    /// ROOT/swiftlet/ID, with the settings' controllers enabled above it and the settings
    /// written. Returns its path.
    static func makeCgroup(root: String, id: String, settings: [CgroupSetting]) throws(SwiftletError) -> String {
        let parent = root + "/" + JailCgroup.parentGroup
        let group = parent + "/" + id
        if !exists(parent) { try makeDirectory(parent, mode: 0o755) }
        if !exists(group) { try makeDirectory(group, mode: 0o755) }
        let controllers = JailCgroup.controllers(of: settings)
        if !controllers.isEmpty {
            let text = JailCgroup.subtreeControlText(controllers)
            for directory in [root, parent] {
                do {
                    try writeExisting(directory + "/cgroup.subtree_control", text)
                } catch {
                    let available = (try? readFile(directory + "/cgroup.controllers", what: "controllers", maxBytes: 4096))
                        .map { String(decoding: $0, as: UTF8.self) } ?? ""
                    throw .system("enabling \(text) in \(directory)/cgroup.subtree_control (available there: \(trimmed(available)))",
                                  errno: errnoOf(error))
                }
            }
        }
        for setting in settings {
            do {
                try writeExisting(group + "/" + setting.file, setting.value)
            } catch {
                if case .system(_, let code) = error, code == ENOENT {
                    throw .invalidArgument("the cgroup has no file \(setting.file) (unknown, or its controller is not available)")
                }
                throw .system("writing '\(setting.value)' to \(group)/\(setting.file)", errno: errnoOf(error))
            }
        }
        return group
    }

    static func errnoOf(_ error: SwiftletError) -> Int32 {
        if case .system(_, let code) = error { return code }
        return EIO
    }

    static func trimmed(_ text: String) -> String {
        var result = Substring(text)
        while let last = result.last, last == "\n" || last == " " { result = result.dropLast() }
        return String(result)
    }

    // MARK: files

    enum FileKind {
        case regular
        case blockDevice(UInt64)
    }

    static func fileKind(_ file: JailFile) throws(SwiftletError) -> FileKind {
        var info = stat()
        guard stat(file.hostPath, &info) == 0 else {
            throw .invalidArgument("cannot use the \(file.what) \(file.hostPath): \(SwiftletError.errnoString(sl_errno()))")
        }
        let type = info.st_mode & mode_t(S_IFMT)
        if type == mode_t(S_IFREG) { return .regular }
        if type == mode_t(S_IFBLK) && file.what == "disk" { return .blockDevice(UInt64(info.st_rdev)) }
        throw .invalidArgument("the \(file.what) \(file.hostPath) is not a regular file\(file.what == "disk" ? " or block device" : "")")
    }

    static func deviceNumber(_ path: String, what: String) throws(SwiftletError) -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .unsupported("\(what) is missing on this host: \(SwiftletError.errnoString(sl_errno()))") }
        guard info.st_mode & mode_t(S_IFMT) == mode_t(S_IFCHR) else { throw .unsupported("\(path) is not a character device") }
        return UInt64(info.st_rdev)
    }

    static func makeDevice(_ path: String, number: UInt64, block: Bool, mode: UInt32, _ options: JailOptions) throws(SwiftletError) {
        let result = sl_mknod_device(path, mode, block ? 1 : 0, sl_dev_major(number), sl_dev_minor(number))
        guard result == 0 else { throw .system("creating the device node \(path)", errno: -result) }
        try changeOwner(path, options)
    }

    static func checkExecFile(_ path: String) throws(SwiftletError) {
        let header = try readFile(path, what: "exec file", maxBytes: 64 * 1024, prefixOnly: true)
        guard access(path, X_OK) == 0 else { throw .invalidArgument("--exec-file \(path) is not executable") }
        switch JailPlan.needsInterpreter(elfHeader: header) {
        case true?:
            throw .invalidArgument("--exec-file \(path) is dynamically linked: the jail holds nothing but the exec file, so it must be static (ci/build-edge builds such binaries)")
        case nil:
            throw .invalidArgument("--exec-file \(path) is not a 64-bit ELF executable")
        case false?:
            break
        }
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func currentDirectory() throws(SwiftletError) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { throw .lastSystemError("getcwd") }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    static func readLink(_ path: String) throws(SwiftletError) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { throw .lastSystemError("readlink \(path)") }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func makeDirectory(_ path: String, mode: UInt32) throws(SwiftletError) {
        guard mkdir(path, mode_t(mode)) == 0 else { throw .lastSystemError("creating the directory \(path)") }
    }

    /// mkdir -p (root-owned, 0755).
    static func makeDirectories(_ path: String) throws(SwiftletError) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if !exists(current) { try makeDirectory(current, mode: 0o755) }
        }
    }

    static func changeOwner(_ path: String, _ options: JailOptions) throws(SwiftletError) {
        guard chown(path, uid_t(options.uid), gid_t(options.gid)) == 0 else {
            throw .lastSystemError("giving \(path) to uid \(options.uid) gid \(options.gid)")
        }
    }

    /// The file's bytes (at most maxBytes; more is an error unless prefixOnly).
    static func readFile(_ path: String, what: String, maxBytes: Int, prefixOnly: Bool = false) throws(SwiftletError) -> [UInt8] {
        let fd = sl_open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw .invalidArgument("cannot open the \(what) \(path): \(SwiftletError.errnoString(sl_errno()))") }
        defer { close(fd) }
        guard let read = readToEnd(fd, maxBytes: maxBytes) else {
            throw .invalidArgument("cannot read the \(what) \(path): \(SwiftletError.errnoString(sl_errno()))")
        }
        if read.reachedLimit && !prefixOnly { throw .invalidArgument("the \(what) \(path) is larger than \(maxBytes) bytes") }
        return read.bytes
    }

    /// Reads `fd` until end of file or until `maxBytes` have come (`reachedLimit`; the bytes
    /// are cut to `maxBytes`); nil on a read error (errno says which).
    static func readToEnd(_ fd: Int32, maxBytes: Int) -> (bytes: [UInt8], reachedLimit: Bool)? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if sl_errno() == EINTR { continue }
                return nil
            }
            if n == 0 { return (bytes, false) }
            bytes += chunk[0..<n]
            if bytes.count >= maxBytes { return (Array(bytes[0..<maxBytes]), true) }
        }
    }

    /// Writes a whole file that must not exist yet.
    static func writeNewFile(_ path: String, _ bytes: [UInt8], mode: UInt32) throws(SwiftletError) {
        let fd = sl_open_mode(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard fd >= 0 else { throw .lastSystemError("creating \(path)") }
        defer { close(fd) }
        try writeAll(fd, bytes, path: path)
    }

    /// Writes text to an existing file (a cgroup's interface file): one write, as the
    /// kernel wants for these.
    static func writeExisting(_ path: String, _ text: String) throws(SwiftletError) {
        let fd = sl_open(path, O_WRONLY)
        guard fd >= 0 else { throw .lastSystemError("opening \(path)") }
        defer { close(fd) }
        try writeAll(fd, Array(text.utf8), path: path)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SwiftletError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if sl_errno() == EINTR { continue }
                throw .lastSystemError("writing \(path)")
            }
            offset += n
        }
    }

    static func copyFile(_ source: String, to target: String, mode: UInt32) throws(SwiftletError) {
        let input = sl_open(source, O_RDONLY)
        guard input >= 0 else { throw .lastSystemError("opening \(source)") }
        defer { close(input) }
        let output = sl_open_mode(target, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard output >= 0 else { throw .lastSystemError("creating \(target)") }
        defer { close(output) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress!, $0.count) }
            if n < 0 {
                if sl_errno() == EINTR { continue }
                throw .lastSystemError("reading \(source)")
            }
            if n == 0 { break }
            try writeAll(output, Array(chunk[0..<n]), path: target)
        }
        // O_CREAT's mode went through the umask.
        guard fchmod(output, mode_t(mode)) == 0 else { throw .lastSystemError("chmod \(target)") }
    }
}
