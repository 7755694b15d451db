import CLinux
import SwiftletCore

/// A vCPU file descriptor and its mmap'd `struct kvm_run`.
public final class KVMVCPU {
    public let fd: Int32
    public let id: Int
    public let run: UnsafeMutablePointer<kvm_run>
    private let runSize: Int

    init(fd: Int32, id: Int, run: UnsafeMutablePointer<kvm_run>, runSize: Int) {
        self.fd = fd
        self.id = id
        self.run = run
        self.runSize = runSize
    }

    deinit {
        munmap(run, runSize)
        close(fd)
    }

    /// One KVM_RUN. Returns 0, or the errno (EINTR/EAGAIN when kicked).
    @inline(__always)
    public func runOnce() -> Int32 {
        sl_ioctl_value(fd, SL_KVM_RUN, 0) == 0 ? 0 : sl_errno()
    }

    public var exitReason: UInt32 { sl_run_exit_reason(run) }

    public func setImmediateExit(_ on: Bool) { sl_run_set_immediate_exit(run, on ? 1 : 0) }

    public func setMPState(_ state: UInt32) throws(SwiftletError) {
        var mp = kvm_mp_state(mp_state: state)
        guard sl_ioctl(fd, SL_KVM_SET_MP_STATE, &mp) == 0 else { throw .lastSystemError("KVM_SET_MP_STATE") }
    }
}
