import SwiftletCore

/// `swiftlet jail` with `--config-file`: the file's host paths (boot-source's kernel and
/// initrd, each drive's path_on_host) go into the jail as the command line's do and are
/// rewritten to their jail paths; the paths the VMM creates (logger, metrics, vsock
/// sockets) are the jail's already, their directories made. Everything else is copied
/// as it is, and the VMM's own parser judges it.
public enum JailConfigFile {
    public static func rewrite(_ bytes: [UInt8], plan: inout JailPlan, cwd: String) throws(SwiftletError) -> [UInt8] {
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw .invalidArgument("config file \(plan.configFile ?? ""): \(error)")
        }
        guard case .object(var sections) = document else {
            throw .invalidArgument("config file \(plan.configFile ?? ""): expected a JSON object, got \(document.typeName)")
        }
        for i in 0..<sections.count {
            let name = sections[i].0
            switch name {
            case "boot-source":
                sections[i].1 = try rewriteMembers(sections[i].1) { key, value throws(SwiftletError) in
                    switch key {
                    case "kernel_image_path": return try plan.place(value, what: "kernel", writable: false, cwd: cwd)
                    case "initrd_path": return try plan.place(value, what: "initrd", writable: false, cwd: cwd)
                    default: return nil
                    }
                }
            case "drives":
                guard case .array(var drives) = sections[i].1 else { continue }
                for d in 0..<drives.count {
                    var readOnly = false
                    if case .bool(true)? = drives[d]["is_read_only"] { readOnly = true }
                    drives[d] = try rewriteMembers(drives[d]) { key, value throws(SwiftletError) in
                        key == "path_on_host" ? try plan.place(value, what: "disk", writable: !readOnly, cwd: cwd) : nil
                    }
                }
                sections[i].1 = .array(drives)
            case "logger", "metrics", "vsock":
                let key = name == "logger" ? "log_path" : name == "metrics" ? "metrics_path" : "uds_path"
                if case .string(let path)? = sections[i].1[key] { try plan.makeDirectory(for: path, flag: "\(name) \(key)") }
            case "network-interfaces":
                if case .array(let interfaces) = sections[i].1, !interfaces.isEmpty { plan.needsTun = true }
            default:
                break
            }
        }
        return JSONValue.object(sections).serializedBytes()
    }

    /// `value` with each string member that `change` answers for replaced by its answer.
    static func rewriteMembers(_ value: JSONValue,
                               _ change: (String, String) throws(SwiftletError) -> String?) throws(SwiftletError) -> JSONValue {
        guard case .object(var members) = value else { return value }
        for m in 0..<members.count {
            if case .string(let text) = members[m].1, let replaced = try change(members[m].0, text) {
                members[m].1 = .string(replaced)
            }
        }
        return .object(members)
    }
}
