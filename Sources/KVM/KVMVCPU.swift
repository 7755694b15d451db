import CLinux
import SwiftletCore

/// A vCPU file descriptor and its mmap'd `struct kvm_run`.
public final class KVMVCPU {
    public let fd: Int32
    public let id: Int
    /// The mmap'd kvm_run; only this module reads it (the run loop gets a `VCPUExit`).
    let runPage: UnsafeMutablePointer<kvm_run>
    let runSize: Int

    init(fd: Int32, id: Int, run: UnsafeMutablePointer<kvm_run>, runSize: Int) {
        self.fd = fd
        self.id = id
        self.runPage = run
        self.runSize = runSize
    }

    deinit {
        munmap(runPage, runSize)
        close(fd)
    }

    public func setImmediateExit(_ on: Bool) { sl_run_set_immediate_exit(runPage, on ? 1 : 0) }

    /// Makes this thread the one a kick signal (VM.kickSignal) stops: the signal handler
    /// sets immediate_exit on this vCPU's kvm_run. Call on the vCPU's thread; nil undoes it.
    public func bindKickToThisThread(_ bound: Bool) { sl_vcpu_thread_set_run(bound ? runPage : nil) }

    public func setMPState(_ state: UInt32) throws(SwiftletError) {
        var mp = kvm_mp_state(mp_state: state)
        guard sl_ioctl(fd, SL_KVM_SET_MP_STATE, &mp) == 0 else { throw .lastSystemError("KVM_SET_MP_STATE") }
    }
}
