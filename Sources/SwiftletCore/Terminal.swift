import CLinux

/// Puts a terminal on stdin into raw mode (every key goes to the guest, Ctrl-C included)
/// and restores it on every way out: normal return, `exit`, and handled signals.
public final class Terminal {
    // Only the main thread touches these.
    nonisolated(unsafe) private static var saved: termios?
    nonisolated(unsafe) private static var hookInstalled = false

    public static var stdinIsTerminal: Bool { isatty(0) == 1 }

    public static func enterRawMode() {
        guard stdinIsTerminal, saved == nil else { return }
        var attributes = termios()
        guard tcgetattr(0, &attributes) == 0 else { return }
        saved = attributes
        cfmakeraw(&attributes)
        // Keep output post-processing so host-side messages still start at column 0.
        attributes.c_oflag |= tcflag_t(OPOST)
        _ = tcsetattr(0, TCSANOW, &attributes)
        if !hookInstalled {
            hookInstalled = true
            atexit { Terminal.restore() }
        }
    }

    public static func restore() {
        guard var attributes = saved else { return }
        _ = tcsetattr(0, TCSANOW, &attributes)
        saved = nil
    }
}

/// QEMU's console escape: Ctrl-A then x quits; Ctrl-A Ctrl-A sends one Ctrl-A.
public struct EscapeFilter {
    public static let escape: UInt8 = 0x01
    private var pendingEscape = false

    public init() {}

    public enum Action: Equatable { case none, quit }

    /// Filters `input` in place (it can only shrink); returns the bytes to forward and
    /// whether the user asked to quit.
    public mutating func filter(_ input: UnsafeMutableRawBufferPointer, count: Int) -> (Int, Action) {
        var out = 0
        for i in 0..<count {
            let byte = input[i]
            if pendingEscape {
                pendingEscape = false
                switch byte {
                case UInt8(ascii: "x"), UInt8(ascii: "X"): return (out, .quit)
                case EscapeFilter.escape: input[out] = byte; out += 1
                default: break  // unknown escape: swallowed, like QEMU
                }
            } else if byte == EscapeFilter.escape {
                pendingEscape = true
            } else {
                input[out] = byte
                out += 1
            }
        }
        return (out, .none)
    }
}
