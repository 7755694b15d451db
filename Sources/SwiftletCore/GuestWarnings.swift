import Synchronization

/// Guest misbehaviour the VMM absorbs and counts rather than stop for, logged at Warning
/// the first time each kind happens in the process and never again: a guest probing for
/// absent devices does so thousands of times, and one that resets in a loop would do it
/// again on every boot. The counts say how often (`--stats`, the metrics).
/// Thread-safe: vCPU and I/O threads ask; one relaxed load once a kind has been seen.
public final class GuestWarnings: Sendable {
    public static let shared = GuestWarnings()

    public enum Kind: UInt8 {
        /// An MMIO access no device claims.
        case unclaimedMMIO = 1
        /// A port access no device claims.
        case unclaimedPIO = 2
        /// A vCPU exit whose fields could not be valid.
        case malformedExit = 4
        /// A virtio device that gave up on a malformed queue (DEVICE_NEEDS_RESET).
        case virtioNeedsReset = 8
    }

    private let seen = Atomic<UInt8>(0)
    private let logger: Logger

    public init(logger: Logger = .shared) { self.logger = logger }

    /// Logs `message` at Warning if this is the first `kind` in the process; true then.
    @discardableResult
    public func warnOnce(_ kind: Kind, _ message: @autoclosure () -> String,
                         file: StaticString = #fileID, line: UInt = #line) -> Bool {
        guard seen.load(ordering: .relaxed) & kind.rawValue == 0,
              seen.bitwiseOr(kind.rawValue, ordering: .relaxed).oldValue & kind.rawValue == 0 else { return false }
        logger.warn(message() + "; later ones are only counted", file: file, line: line)
        return true
    }
}
