import SwiftletCore

/// Why a VM stopped. Guest-initiated power-off and reset are normal ends (status 0);
/// a failure is a VMM or KVM error (status 1). Each end names how it came about, and
/// `swiftlet run` prints that on stderr: a reset from a guest panic (`panic=-1`) and a
/// power-off both exit 0, and only the line tells them apart.
public enum VMExit: Equatable, CustomStringConvertible {
    /// The guest powered the machine off through `how` (PSCI SYSTEM_OFF, ACPI S5).
    case powerOff(how: String)
    /// The guest reset the machine through `how` (i8042, PSCI SYSTEM_RESET), or a vCPU
    /// triple-faulted.
    case reset(how: String)
    /// A vCPU halted with nothing to wake it (only without an in-kernel irqchip).
    case halted(vcpu: Int)
    /// The VMM ended the VM (the API's or the console's quit).
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

    /// A VMM failure, or a VM that could not be built: not an end the guest or the
    /// operator chose.
    public var isFailure: Bool {
        switch self {
        case .failure, .notStarted: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .powerOff(let how): return "guest powered off (\(how))"
        case .reset(let how): return "guest reset (\(how))"
        case .halted(let vcpu): return "guest halted (vCPU \(vcpu))"
        case .stopped: return "stopped"
        case .signal(let number): return "stopped by signal \(number)"
        case .failure(let message): return message
        case .notStarted(let error): return error.description
        }
    }
}
