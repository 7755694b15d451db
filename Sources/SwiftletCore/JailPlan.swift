/// A host file the VMM needs, and where it appears in the jail.
public struct JailFile: Equatable {
    /// Absolute path on the host.
    public var hostPath: String
    /// Absolute path inside the jail (`/Image`).
    public var jailPath: String
    /// A writable disk: a bind mount of it stays writable (hard links always are).
    public var writable: Bool
    /// For messages: kernel, initrd, disk, config file.
    public var what: String

    public init(hostPath: String, jailPath: String, writable: Bool, what: String) {
        self.hostPath = hostPath
        self.jailPath = jailPath
        self.writable = writable
        self.what = what
    }
}

/// What `swiftlet jail` will put where, and the VMM's rewritten command line: computed from
/// the options alone (no file is touched), so the rewriting is unit-tested.
public struct JailPlan: Equatable {
    /// CHROOT-BASE/ID.
    public var instanceDirectory: String
    /// CHROOT-BASE/ID/root: the VMM's `/`.
    public var root: String
    /// The exec file's name in the jail's `/` (its basename).
    public var execName: String
    public var dialect: CommandLineDialect
    public var files: [JailFile] = []
    /// Jail directories the VMM creates files in (sockets, logs), owned by the VMM's user.
    public var directories: [String] = []
    /// `--config-file`'s host path: rewritten into the jail as `configJailPath`.
    public var configFile: String?
    /// argv of the exec: the exec name, `run` (Swiftlet's dialect), the rewritten arguments.
    public var arguments: [String] = []
    /// The VM has a --net: /dev/net/tun is required in the jail.
    public var needsTun = false
    var taken: Set<String>
    var placed: [String: String] = [:]

    public static let configJailPath = "/config.json"
    /// Names the jail uses itself.
    static let reserved: Set<String> = ["dev", "old_root", "config.json", "swiftlet.pid"]

    /// Flags of `swiftlet run` (and Firecracker's) that take a value as the next argument.
    /// Tests check each against RunOptions.parse, and every flag the help shows with a value
    /// against this list.
    public static let valueFlags: Set<String> = [
        "--kernel", "--initrd", "--cmdline", "--cpus", "--memory", "--hugepages", "--dump-dtb", "--disk", "--net",
        "--vsock", "--seccomp", "--seccomp-deny", "--api-socket", "--api-sock", "--id", "--config-file", "--log-path",
        "--level", "--module", "--metrics-path", "--http-api-max-payload-size", "--start-time-us",
        "--start-time-cpu-us", "--parent-cpu-time-us", "--api-allow", "--audit-log",
    ]
    /// Flags whose value is a path the VMM creates or opens for writing in the jail: kept as
    /// it is (it is the jail's path), its directory made.
    static let jailPathFlags: Set<String> = ["--api-socket", "--api-sock", "--log-path", "--metrics-path", "--audit-log",
                                             "--dump-dtb"]

    /// - Parameters:
    ///   - execPath: the exec file's host path (its basename names it in the jail).
    ///   - cwd: the jail's working directory, for relative host paths.
    public static func make(_ options: JailOptions, execPath: String, cwd: String) throws(SwiftletError) -> JailPlan {
        let execName = baseName(execPath)
        guard !execName.isEmpty, execName != ".", execName != "..", !reserved.contains(execName) else {
            throw .invalidArgument("--exec-file \(execPath) does not name a file")
        }
        let dialect = CommandLineDialect.forProgramName(execName)
        // The VMM's own parser first: what it refuses, the jail refuses, with its words.
        switch try RunOptions.parse(options.runArguments, dialect: dialect) {
        case .help, .version:
            throw .invalidArgument("--help and --version are the VMM's own: run them without the jail")
        case .run:
            break
        }
        let instance = joinPath(options.chrootBaseDir, options.id)
        var plan = JailPlan(instanceDirectory: instance, root: joinPath(instance, "root"), execName: execName,
                            dialect: dialect, taken: reserved.union([execName]))
        // The VMM's own directories first, so that no image is placed under their names.
        for (i, argument) in options.runArguments.enumerated() {
            var flag = argument, value: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                flag = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            } else if i + 1 < options.runArguments.count {
                value = options.runArguments[i + 1]
            }
            guard let value else { continue }
            if jailPathFlags.contains(flag) { try plan.makeDirectory(for: value, flag: flag) }
            if flag == "--vsock" { _ = try plan.rewriteVsock(value) }
        }
        var rewritten: [String] = dialect == .swiftlet ? ["run"] : []
        var hasID = false
        var index = 0
        let arguments = options.runArguments
        while index < arguments.count {
            var argument = arguments[index]
            var inline = false
            var value: String?
            if dialect == .firecracker && argument == "--" {
                rewritten += arguments[index...]   // for other programs: left alone
                break
            }
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                value = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
                inline = true
            } else if valueFlags.contains(argument), index + 1 < arguments.count {
                index += 1
                value = arguments[index]
            }
            func emit(_ newValue: String) {
                if inline { rewritten.append("\(argument)=\(newValue)") } else { rewritten += [argument, newValue] }
            }
            switch (argument, value) {
            case ("--kernel", let path?):
                emit(try plan.place(path, what: "kernel", writable: false, cwd: cwd))
            case ("--initrd", let path?):
                emit(try plan.place(path, what: "initrd", writable: false, cwd: cwd))
            case ("--disk", let spec?):
                emit(try plan.rewriteDisk(spec, cwd: cwd))
            case ("--config-file", let path?):
                plan.configFile = absolute(path, cwd: cwd)
                emit(configJailPath)
            case ("--vsock", let spec?):
                emit(try plan.rewriteVsock(spec))
            case ("--net", let spec?):
                plan.needsTun = true
                emit(spec)
            case ("--id", let id?):
                hasID = true
                emit(id)
            case (let flag, let path?) where jailPathFlags.contains(flag):
                try plan.makeDirectory(for: path, flag: flag)
                emit(path)
            case (_, let other?):
                emit(other)
            case (_, nil):
                rewritten.append(argument)
            }
            index += 1
        }
        if !hasID {
            // Before a Firecracker `--`, so the VMM reads it.
            let at = rewritten.firstIndex(of: "--") ?? rewritten.count
            rewritten.insert(contentsOf: ["--id", options.id], at: at)
        }
        plan.arguments = [execName] + rewritten
        return plan
    }

    /// Puts a host file in the jail (once per host path) and returns its jail path.
    public mutating func place(_ path: String, what: String, writable: Bool, cwd: String) throws(SwiftletError) -> String {
        let host = JailPlan.absolute(path, cwd: cwd)
        if let existing = placed[host] {
            if writable, let i = files.firstIndex(where: { $0.hostPath == host }) { files[i].writable = true }
            return existing
        }
        var name = JailPlan.baseName(host)
        if name.isEmpty || name == "." || name == ".." { name = what }
        var candidate = name
        var n = 2
        while taken.contains(candidate) {
            candidate = "\(n)-\(name)"
            n += 1
        }
        taken.insert(candidate)
        let jailPath = "/" + candidate
        placed[host] = jailPath
        files.append(JailFile(hostPath: host, jailPath: jailPath, writable: writable, what: what))
        return jailPath
    }

    /// A directory the VMM will create `path` in (a socket, a log): made in the jail,
    /// owned by the VMM's user. `..` is refused: the jail creates it as root on the host.
    public mutating func makeDirectory(for path: String, flag: String) throws(SwiftletError) {
        let components = path.split(separator: "/")
        guard !components.contains("..") else {
            throw .invalidArgument("\(flag) \(path): '..' is not allowed; this path is inside the jail (its / is the jail's root)")
        }
        guard components.count > 1 else { return }
        var directory = ""
        for component in components.dropLast() where component != "." {
            directory += "/" + component
            if !directories.contains(directory) { directories.append(directory) }
            if directory.split(separator: "/").count == 1 { taken.insert(String(component)) }
        }
    }

    mutating func rewriteDisk(_ spec: String, cwd: String) throws(SwiftletError) -> String {
        var items = spec.split(separator: ",", omittingEmptySubsequences: false).map { String($0) }
        let readOnly = items.contains("readonly=on") || items.contains("readonly=true")
        for i in 0..<items.count where items[i].hasPrefix("path=") {
            let path = String(items[i].dropFirst(5))
            items[i] = "path=" + (try place(path, what: "disk", writable: !readOnly, cwd: cwd))
        }
        return join(items, ",")
    }

    mutating func rewriteVsock(_ spec: String) throws(SwiftletError) -> String {
        for item in spec.split(separator: ",") where item.hasPrefix("socket=") {
            try makeDirectory(for: String(item.dropFirst(7)), flag: "--vsock socket=")
        }
        return spec
    }

    /// The paths the jail must create as directories for the VMM, under `root` (host paths).
    public var hostDirectories: [String] { directories.map { root + $0 } }

    public static func absolute(_ path: String, cwd: String) -> String {
        path.hasPrefix("/") ? path : joinPath(cwd, path)
    }

    public static func joinPath(_ a: String, _ b: String) -> String {
        a.hasSuffix("/") ? a + b : a + "/" + b
    }

    public static func baseName(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        if let slash = trimmed.lastIndex(of: "/") { return String(trimmed[trimmed.index(after: slash)...]) }
        return String(trimmed)
    }
}

func join(_ items: [String], _ separator: String) -> String {
    var text = ""
    for (i, item) in items.enumerated() { text += (i == 0 ? "" : separator) + item }
    return text
}

extension JailPlan {
    /// Whether / is the initial ramfs ("rootfs" in /proc/self/mountinfo), which
    /// pivot_root(2) refuses to move (EINVAL): a system that runs from its initramfs.
    public static func rootIsInitramfs(mountinfo: String) -> Bool {
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4] == "/", let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            return fields[dash + 1] == "rootfs"
        }
        return false
    }

    /// Whether an ELF file's first bytes name a program interpreter (PT_INTERP): a
    /// dynamically linked executable, which cannot start in a jail that holds nothing but
    /// itself. nil: not a 64-bit little-endian ELF, or its program headers lie beyond `header`.
    public static func needsInterpreter(elfHeader header: [UInt8]) -> Bool? {
        guard header.count >= 64, header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46,
              header[4] == 2, header[5] == 1 else { return nil }
        let phoff64 = readLE64(header, at: 32)
        guard phoff64 <= UInt64(header.count) else { return nil }
        let phoff = Int(phoff64)
        let entrySize = Int(readLE16(header, at: 54)), count = Int(readLE16(header, at: 56))
        guard entrySize >= 4, count < 4096,
              count * entrySize <= header.count - phoff else { return nil }
        for i in 0..<count where readLE32(header, at: phoff + i * entrySize) == 3 { return true }
        return false
    }
}
