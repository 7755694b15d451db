import CLinux

/// The one error type of Swiftlet's product code. Embedded Swift has no untyped `throws`,
/// so every throwing function says `throws(SwiftletError)`. The description is the one
/// line a user sees before a non-zero exit.
public enum SwiftletError: Error, Equatable, CustomStringConvertible {
    /// A system call failed: what was being done, and errno.
    case system(String, errno: Int32)
    /// The user asked for something that cannot be done (bad flag, size, path).
    case invalidArgument(String)
    /// A kernel, initrd or other image is unusable.
    case invalidImage(String)
    /// A guest-physical range is not wholly inside guest RAM.
    case outOfBounds(address: UInt64, length: UInt64)
    /// The host's KVM lacks something Swiftlet needs.
    case unsupported(String)
    /// The guest stopped in a way that is an error (KVM internal error, failed entry).
    case guestFailure(String)

    public var description: String {
        switch self {
        case .system(let what, let code):
            return "\(what): \(SwiftletError.errnoString(code))"
        case .invalidArgument(let message), .invalidImage(let message),
             .unsupported(let message), .guestFailure(let message):
            return message
        case .outOfBounds(let address, let length):
            return "guest range 0x\(hex(address)) (+\(length) bytes) is outside guest memory"
        }
    }

    /// The user is at fault (a flag, size, path, image or request they gave): the CLI
    /// exits 2 and the API answers 400. Everything else is the host's or Swiftlet's: 1 / 500.
    public var isBadInput: Bool {
        switch self {
        case .invalidArgument, .invalidImage: return true
        case .system, .outOfBounds, .unsupported, .guestFailure: return false
        }
    }

    /// `system` from the current errno.
    public static func lastSystemError(_ what: String) -> SwiftletError {
        .system(what, errno: sl_errno())
    }

    public static func errnoString(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}

/// Lower-case hex without a prefix; Embedded Swift has no String(radix:) formatting options
/// beyond this, and this is all Swiftlet needs.
public func hex(_ value: UInt64) -> String {
    String(value, radix: 16)
}
