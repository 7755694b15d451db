#if arch(x86_64)
import CLinux
import SwiftletCore

extension KVMVCPU {
    public func getRegs() throws(SwiftletError) -> kvm_regs {
        var regs = kvm_regs()
        guard sl_ioctl(fd, SL_KVM_GET_REGS, &regs) == 0 else { throw .lastSystemError("KVM_GET_REGS") }
        return regs
    }

    public func setRegs(_ regs: kvm_regs) throws(SwiftletError) {
        var regs = regs
        guard sl_ioctl(fd, SL_KVM_SET_REGS, &regs) == 0 else { throw .lastSystemError("KVM_SET_REGS") }
    }

    public func getSregs() throws(SwiftletError) -> kvm_sregs {
        var sregs = kvm_sregs()
        guard sl_ioctl(fd, SL_KVM_GET_SREGS, &sregs) == 0 else { throw .lastSystemError("KVM_GET_SREGS") }
        return sregs
    }

    public func setSregs(_ sregs: kvm_sregs) throws(SwiftletError) {
        var sregs = sregs
        guard sl_ioctl(fd, SL_KVM_SET_SREGS, &sregs) == 0 else { throw .lastSystemError("KVM_SET_SREGS") }
    }

    public func setFPU(_ fpu: kvm_fpu) throws(SwiftletError) {
        var fpu = fpu
        guard sl_ioctl(fd, SL_KVM_SET_FPU, &fpu) == 0 else { throw .lastSystemError("KVM_SET_FPU") }
    }
}

extension KVMVM {
    /// The in-kernel PIC/IOAPIC/LAPIC and the PIT, as Linux guests expect on PC hardware.
    public func createIRQChipAndPIT() throws(SwiftletError) {
        guard sl_ioctl_value(fd, SL_KVM_CREATE_IRQCHIP, 0) == 0 else { throw .lastSystemError("KVM_CREATE_IRQCHIP") }
        var pit = kvm_pit_config()
        guard sl_ioctl(fd, SL_KVM_CREATE_PIT2, &pit) == 0 else { throw .lastSystemError("KVM_CREATE_PIT2") }
    }

    public func setTSSAddress(_ address: UInt64) throws(SwiftletError) {
        guard sl_ioctl_value(fd, SL_KVM_SET_TSS_ADDR, UInt(address)) == 0 else { throw .lastSystemError("KVM_SET_TSS_ADDR") }
    }
}
#endif
