/// The cgroup v2 side of `swiftlet jail`, as values: what goes into which file of the
/// VMM's group, which controllers its parent must enable, and where cgroup2 is mounted.
/// Pure, so every accepted and refused value is unit-tested; JailCommand does the writes.
public struct CgroupSetting: Equatable, CustomStringConvertible {
    /// A file of the group, e.g. `cpu.max`.
    public var file: String
    /// What is written there, e.g. `50000 100000`.
    public var value: String

    public init(file: String, value: String) {
        self.file = file
        self.value = value
    }

    /// The controller the file belongs to (`cpu` for `cpu.max`).
    public var controller: String {
        if let dot = file.firstIndex(of: ".") { return String(file[..<dot]) }
        return file
    }

    public var description: String { "\(file)=\(value)" }
}

public enum JailCgroup {
    /// The default CFS period (the kernel's), in microseconds.
    public static let defaultPeriod: UInt64 = 100_000
    /// The kernel's bounds for cpu.max (kernel/sched/core.c): period 1 ms to 1 s, quota at least 1 ms.
    public static let minPeriod: UInt64 = 1_000
    public static let maxPeriod: UInt64 = 1_000_000
    public static let minQuota: UInt64 = 1_000
    /// The group of an instance, below the cgroup2 mount: `swiftlet/ID`.
    public static let parentGroup = "swiftlet"

    /// `--cpu-max`: `QUOTA[/PERIOD]` in microseconds (`50000`, `50000/100000`), a number of
    /// CPUs with a decimal point (`0.5`, `1.0`, `2.25`: the quota of that many CPUs per
    /// default period), or `max`. Returns cpu.max's text: `QUOTA PERIOD`.
    public static func parseCPUMax(_ text: String) throws(SwiftletError) -> String {
        let usage = "--cpu-max takes QUOTA[/PERIOD] in microseconds (e.g. 50000/100000), a number of CPUs with a decimal point (e.g. 0.5), or max; got '\(text)'"
        if text == "max" { return "max \(defaultPeriod)" }
        if text.hasPrefix("max/") {
            let period = try parsePeriod(String(text.dropFirst(4)), usage: usage)
            return "max \(period)"
        }
        if text.firstIndex(of: ".") != nil {
            guard let micro = parseDecimalMillionths(text), micro > 0 else { throw .invalidArgument(usage) }
            let quota = micro / 10   // millionths of a CPU × 100,000 µs / 1,000,000
            guard quota >= minQuota else {
                throw .invalidArgument("--cpu-max \(text) is a quota of \(quota) us per \(defaultPeriod) us: at least \(minQuota) us (0.01 CPU) is needed")
            }
            guard micro <= 1_000_000 * 4096 else { throw .invalidArgument("--cpu-max \(text): at most 4096 CPUs") }
            return "\(quota) \(defaultPeriod)"
        }
        var quotaText = text
        var period = defaultPeriod
        if let slash = text.firstIndex(of: "/") {
            quotaText = String(text[..<slash])
            period = try parsePeriod(String(text[text.index(after: slash)...]), usage: usage)
        }
        guard !quotaText.isEmpty, quotaText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let quota = UInt64(quotaText) else {
            throw .invalidArgument(usage)
        }
        guard quota >= minQuota else {
            throw .invalidArgument("--cpu-max quota \(quota) us is below the kernel's minimum of \(minQuota) us (for a fraction of a CPU write it with a point, e.g. 0.5)")
        }
        guard quota <= UInt64(Int64.max) / 2 else { throw .invalidArgument("--cpu-max quota \(quotaText) is too large") }
        return "\(quota) \(period)"
    }

    static func parsePeriod(_ text: String, usage: String) throws(SwiftletError) -> UInt64 {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let period = UInt64(text) else {
            throw .invalidArgument(usage)
        }
        guard period >= minPeriod && period <= maxPeriod else {
            throw .invalidArgument("--cpu-max period \(text) us is outside the kernel's \(minPeriod) to \(maxPeriod) us")
        }
        return period
    }

    /// `D[.DDDDDD]` → millionths (no Double parsing in Embedded Swift); nil if malformed or
    /// more than six decimals.
    static func parseDecimalMillionths(_ text: String) -> UInt64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, !(parts[0].isEmpty && parts[1].isEmpty), parts[1].count <= 6 else { return nil }
        for part in parts where !part.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) { return nil }
        guard parts[0].count <= 7 else { return nil }
        let whole = parts[0].isEmpty ? 0 : UInt64(parts[0])!
        var fraction: UInt64 = parts[1].isEmpty ? 0 : UInt64(parts[1])!
        for _ in parts[1].count..<6 { fraction *= 10 }
        return whole * 1_000_000 + fraction
    }

    /// `--memory-max`: bytes with an optional K, M, G or T suffix (binary units), or `max`.
    /// Below 1 MiB is refused: no VMM runs there, and it is most likely MiB meant as bytes.
    public static func parseMemoryMax(_ text: String) throws(SwiftletError) -> String {
        if text == "max" { return "max" }
        let bytes = try parseBytes(text, flag: "--memory-max")
        guard bytes >= 1 << 20 else {
            throw .invalidArgument("--memory-max \(text) is \(bytes) bytes: below 1 MiB no VMM can run (use a suffix, e.g. \(text)M)")
        }
        return "\(bytes)"
    }

    /// `--pids-max`: a positive count, or `max`.
    public static func parsePidsMax(_ text: String) throws(SwiftletError) -> String {
        if text == "max" { return "max" }
        guard text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let count = UInt64(text), count > 0, count <= UInt64(Int32.max) else {
            throw .invalidArgument("--pids-max takes a positive whole number or max, got '\(text)'")
        }
        return "\(count)"
    }

    /// A byte count with an optional K, M, G or T suffix (powers of 1024).
    public static func parseBytes(_ text: String, flag: String) throws(SwiftletError) -> UInt64 {
        // Bytes, not Characters or Substrings: plain arithmetic that behaves alike in the
        // Embedded builds.
        var digits = Array(text.utf8)
        var shift: UInt64 = 0
        if let last = digits.last, !(last >= 48 && last <= 57) {
            digits.removeLast()
            switch last {
            case UInt8(ascii: "K"), UInt8(ascii: "k"): shift = 10
            case UInt8(ascii: "M"), UInt8(ascii: "m"): shift = 20
            case UInt8(ascii: "G"), UInt8(ascii: "g"): shift = 30
            case UInt8(ascii: "T"), UInt8(ascii: "t"): shift = 40
            default: throw .invalidArgument("\(flag): unknown unit '\(String(decoding: [last], as: UTF8.self))' in '\(text)' (use K, M, G or T)")
            }
        }
        let usage = "\(flag) takes a byte count with an optional K, M, G or T suffix, got '\(text)'"
        guard !digits.isEmpty, digits.count <= 19 else { throw .invalidArgument(usage) }
        var number: UInt64 = 0
        for digit in digits {
            guard digit >= 48 && digit <= 57 else { throw .invalidArgument(usage) }
            number = number * 10 + UInt64(digit - 48)
        }
        guard number <= UInt64.max >> (shift + 1) else { throw .invalidArgument(usage) }
        return number << shift
    }

    /// Firecracker's `--cgroup FILE=VALUE`: any interface file of a controller
    /// (`cpu.weight=50`, `memory.high=200M`); the hierarchy's own `cgroup.*` files are refused.
    public static func parseSetting(_ text: String) throws(SwiftletError) -> CgroupSetting {
        guard let equals = text.firstIndex(of: "=") else {
            throw .invalidArgument("--cgroup takes FILE=VALUE (e.g. cpu.weight=50), got '\(text)'")
        }
        let file = String(text[..<equals]), value = String(text[text.index(after: equals)...])
        let setting = CgroupSetting(file: file, value: value)
        let allowed = file.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 46 }
        guard allowed, file.firstIndex(of: ".") != nil, !file.hasPrefix("."), !file.hasSuffix("."), setting.controller != "" else {
            throw .invalidArgument("--cgroup: '\(file)' is not a controller's file (CONTROLLER.NAME, e.g. cpu.weight)")
        }
        guard setting.controller != "cgroup" else {
            throw .invalidArgument("--cgroup: \(file) belongs to the hierarchy, not a controller: the jail manages it")
        }
        guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= 32 && $0 < 127 }) else {
            throw .invalidArgument("--cgroup \(file)= needs a value of printable characters")
        }
        return setting
    }

    /// The controllers the settings use, in first-use order: each is enabled in the
    /// subtree_control of every group above the instance's.
    public static func controllers(of settings: [CgroupSetting]) -> [String] {
        var result: [String] = []
        for setting in settings where !result.contains(setting.controller) { result.append(setting.controller) }
        return result
    }

    /// What to write to a cgroup.subtree_control to enable `controllers` (`+cpu +memory`).
    public static func subtreeControlText(_ controllers: [String]) -> String {
        var text = ""
        for controller in controllers { text += (text.isEmpty ? "+" : " +") + controller }
        return text
    }

    /// The first cgroup2 mount point in a /proc/self/mountinfo text, or nil (cgroup v1 only,
    /// or none). Mount points are octal-escaped there (`\040` for a space).
    public static func cgroup2MountPoint(mountinfo: String) -> String? {
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count, dash > 4 else { continue }
            if fields[dash + 1] == "cgroup2" { return unescapeMountinfo(String(fields[4])) }
        }
        return nil
    }

    static func unescapeMountinfo(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == 92, i + 3 < bytes.count {
                let digits = bytes[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= 48 && $0 <= 55 }) {
                    let value = digits.reduce(0) { $0 * 8 + Int($1 - 48) }
                    if value < 256 { out.append(UInt8(value)); i += 4; continue }
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
