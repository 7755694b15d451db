/// Who is at the other end of an API connection, as the kernel recorded it when the peer
/// connected (SO_PEERCRED): its process id and its effective user and group ids. The
/// kernel fills these in, so a client cannot claim to be someone else.
public struct PeerCredentials: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    public var description: String { "pid \(pid), uid \(uid), gid \(gid)" }
}

/// `--api-allow uid=N` or `--api-allow gid=N`: one more user, or the members of one group
/// (the peer's effective group id; supplementary groups are not consulted), admitted to
/// the control API besides the VMM's own user.
public enum APIPeerRule: Equatable, Hashable, Sendable, CustomStringConvertible {
    case uid(UInt32)
    case gid(UInt32)

    public var description: String {
        switch self {
        case .uid(let id): return "uid=\(id)"
        case .gid(let id): return "gid=\(id)"
        }
    }

    /// "uid=N" or "gid=N", N a decimal id below 2^32 - 1 (which is (uid_t)-1, "no id").
    public static func parse(_ text: String) throws(SwiftletError) -> APIPeerRule {
        let bad = SwiftletError.invalidArgument("--api-allow takes uid=N or gid=N (N a numeric user or group id), got '\(text)'")
        guard let equals = text.firstIndex(of: "=") else { throw bad }
        let key = text[..<equals], digits = text[text.index(after: equals)...]
        // Decimal digits only: UInt32("+5") would pass, and names would need /etc/passwd.
        guard !digits.isEmpty, digits.utf8.count <= 10, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let id = UInt32(digits), id != UInt32.max else { throw bad }
        switch key {
        case "uid": return .uid(id)
        case "gid": return .gid(id)
        default: throw bad
        }
    }
}

/// Whether a peer may use the control API: the VMM's own effective user always may (as the
/// owner-only socket always allowed), and so may the users and groups of `--api-allow`.
/// Checked on every accepted connection, also when the socket's mode already keeps others
/// out: the mode is one lock, this is the second.
public struct APIAccessPolicy: Equatable, Sendable {
    /// The VMM's effective uid.
    public let ownerUID: UInt32
    public let rules: [APIPeerRule]

    public init(ownerUID: UInt32, rules: [APIPeerRule] = []) {
        self.ownerUID = ownerUID
        self.rules = rules
    }

    /// With rules, others must be able to connect to the socket at all: its file is made
    /// connectable by everyone (0666) and this policy decides. Without, it stays 0600.
    public var socketIsWorldConnectable: Bool { !rules.isEmpty }

    public func admits(_ peer: PeerCredentials) -> Bool {
        if peer.uid == ownerUID { return true }
        return rules.contains { rule in
            switch rule {
            case .uid(let id): return peer.uid == id
            case .gid(let id): return peer.gid == id
            }
        }
    }
}
