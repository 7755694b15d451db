import SwiftletCore

/// Why a VM stopped. Guest-initiated power-off and reset are normal ends (status 0);
/// a failure is a VMM or KVM error (status 1).
public enum VMExit: Equatable, CustomStringConvertible {
    case powerOff
    case reset
    case halted
    case stopped
    case signal(Int32)
    case failure(String)
    /// The VM could not be built (bad input, or the host could not provide it).
    case notStarted(SwiftletError)

    public var status: Int32 {
        switch self {
        case .failure: return 1
        case .notStarted(let error): return error.isBadInput ? 2 : 1
        case .signal(let number): return 128 + number
        default: return 0
        }
    }

    public var description: String {
        switch self {
        case .powerOff: return "guest powered off"
        case .reset: return "guest reset"
        case .halted: return "guest halted"
        case .stopped: return "stopped"
        case .signal(let number): return "stopped by signal \(number)"
        case .failure(let message): return message
        case .notStarted(let error): return error.description
        }
    }
}
