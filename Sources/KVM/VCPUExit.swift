import CLinux

/// Why KVM_RUN returned, decoded from the kvm_run union by the KVM layer so the run loop
/// never reads kvm_run itself. Payload pointers point into the vCPU's kvm_run mapping and
/// stay valid until the next KVM_RUN; building the value allocates nothing.
public enum VCPUExit {
    /// A guest load from an address no in-kernel device handles; fill `data` (1–8 bytes).
    case mmioRead(address: UInt64, data: UnsafeMutableRawBufferPointer)
    case mmioWrite(address: UInt64, data: UnsafeRawBufferPointer)
    /// `count` port accesses of `size` bytes each (string I/O repeats), data laid out back to
    /// back at `data`; bounds already checked against the kvm_run mapping.
    case portIn(port: UInt16, size: Int, count: Int, data: UnsafeMutableRawPointer)
    case portOut(port: UInt16, size: Int, count: Int, data: UnsafeRawPointer)
    /// KVM_RUN was interrupted (a kick) or the exit was KVM_EXIT_INTR: check for work, re-enter.
    case interrupted
    case halt
    /// x86 triple fault.
    case shutdown
    case systemEvent(SystemEvent)
    case failEntry(hardwareReason: UInt64)
    case internalError(suberror: UInt32)
    /// KVM reported an exit whose fields cannot be valid (e.g. port data outside kvm_run).
    case malformed
    case unknown(reason: UInt32)
    /// KVM_RUN itself failed with this errno.
    case runFailed(errno: Int32)

    public enum SystemEvent: Equatable {
        case shutdown, reset, crash
        case other(UInt32)

        // What makes KVM raise the event: on arm64 its in-kernel PSCI; on x86 nothing a
        // Swiftlet guest has (its power-off and reset are device writes).
        #if arch(arm64)
        public static let shutdownSource = "PSCI SYSTEM_OFF"
        public static let resetSource = "PSCI SYSTEM_RESET"
        #else
        public static let shutdownSource = "KVM system event SHUTDOWN"
        public static let resetSource = "KVM system event RESET"
        #endif
    }
}

extension KVMVCPU {
    /// One KVM_RUN, decoded.
    @inline(__always)
    public func run() -> VCPUExit {
        guard sl_ioctl_value(fd, SL_KVM_RUN, 0) == 0 else {
            let code = sl_errno()
            if code == EINTR || code == EAGAIN {
                setImmediateExit(false)
                return .interrupted
            }
            return .runFailed(errno: code)
        }
        switch Int32(bitPattern: sl_run_exit_reason(runPage)) {
        case KVM_EXIT_MMIO:
            let length = Int(min(8, sl_run_mmio_len(runPage)))
            let data = UnsafeMutableRawPointer(sl_run_mmio_data(runPage)!)
            let address = sl_run_mmio_addr(runPage)
            if sl_run_mmio_is_write(runPage) != 0 {
                return .mmioWrite(address: address, data: UnsafeRawBufferPointer(start: data, count: length))
            }
            return .mmioRead(address: address, data: UnsafeMutableRawBufferPointer(start: data, count: length))
        case KVM_EXIT_IO:
            return decodePortIO()
        case KVM_EXIT_INTR:
            return .interrupted
        case KVM_EXIT_HLT:
            return .halt
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_SYSTEM_EVENT:
            switch Int32(bitPattern: sl_run_system_event_type(runPage)) {
            case KVM_SYSTEM_EVENT_SHUTDOWN: return .systemEvent(.shutdown)
            case KVM_SYSTEM_EVENT_RESET: return .systemEvent(.reset)
            case KVM_SYSTEM_EVENT_CRASH: return .systemEvent(.crash)
            default: return .systemEvent(.other(sl_run_system_event_type(runPage)))
            }
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(hardwareReason: sl_run_hardware_exit_reason(runPage))
        case KVM_EXIT_INTERNAL_ERROR:
            return .internalError(suberror: sl_run_internal_suberror(runPage))
        default:
            return .unknown(reason: sl_run_exit_reason(runPage))
        }
    }

    @inline(__always)
    private func decodePortIO() -> VCPUExit {
        let size = Int(sl_run_io_size(runPage))
        let count = Int(sl_run_io_count(runPage))
        let offset = sl_run_io_data_offset(runPage)
        // KVM fills these; still, no access may leave the kvm_run mapping whatever they say.
        guard size == 1 || size == 2 || size == 4, offset <= UInt64(runSize),
              count <= (runSize - Int(offset)) / size else { return .malformed }
        let data = UnsafeMutableRawPointer(sl_run_io_data(runPage)!)
        let port = sl_run_io_port(runPage)
        if sl_run_io_direction(runPage) == UInt8(KVM_EXIT_IO_OUT) {
            return .portOut(port: port, size: size, count: count, data: UnsafeRawPointer(data))
        }
        return .portIn(port: port, size: size, count: count, data: data)
    }
}
