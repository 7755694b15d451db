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
    /// The PIT drops ticks the guest missed instead of re-injecting them (QEMU's
    /// lost_tick_policy=discard): Linux keeps time with kvmclock and the TSC, not by
    /// counting ticks, and with re-injection on, the VM's teardown waits for two SRCU grace
    /// periods to unregister the PIT's interrupt notifiers (measured: 24-33 ms of this
    /// host's process exit, 1-8 ms without; about 80 ms of an exit in the nested L1).
    public func createIRQChipAndPIT() throws(SwiftletError) {
        guard sl_ioctl_value(fd, SL_KVM_CREATE_IRQCHIP, 0) == 0 else { throw .lastSystemError("KVM_CREATE_IRQCHIP") }
        var pit = kvm_pit_config()
        guard sl_ioctl(fd, SL_KVM_CREATE_PIT2, &pit) == 0 else { throw .lastSystemError("KVM_CREATE_PIT2") }
        var reinject = kvm_reinject_control()
        reinject.pit_reinject = 0
        guard sl_ioctl(fd, SL_KVM_REINJECT_CONTROL, &reinject) == 0 else { throw .lastSystemError("KVM_REINJECT_CONTROL") }
    }

    public func setTSSAddress(_ address: UInt64) throws(SwiftletError) {
        guard sl_ioctl_value(fd, SL_KVM_SET_TSS_ADDR, UInt(address)) == 0 else { throw .lastSystemError("KVM_SET_TSS_ADDR") }
    }
}
#endif

#if arch(x86_64)
extension KVMSystem {
    /// KVM_GET_SUPPORTED_CPUID, as plain entries.
    public func supportedCPUID() throws(SwiftletError) -> [CPUIDLeaf] {
        var capacity = 128
        while capacity <= 4096 {
            let size = 8 + capacity * MemoryLayout<kvm_cpuid_entry2>.stride
            let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
            defer { raw.deallocate() }
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            raw.storeBytes(of: UInt32(capacity), as: UInt32.self)
            if sl_ioctl(fd, SL_KVM_GET_SUPPORTED_CPUID, raw) == 0 {
                let count = Int(raw.load(as: UInt32.self))
                let entries = (raw + 8).bindMemory(to: kvm_cpuid_entry2.self, capacity: count)
                return (0..<count).map { i in
                    let e = entries[i]
                    return CPUIDLeaf(function: e.function, index: e.index, flags: e.flags, eax: e.eax, ebx: e.ebx, ecx: e.ecx, edx: e.edx)
                }
            }
            guard sl_errno() == E2BIG else { throw .lastSystemError("KVM_GET_SUPPORTED_CPUID") }
            capacity *= 2
        }
        throw .unsupported("KVM_GET_SUPPORTED_CPUID: more than 4096 entries")
    }
}

extension KVMVCPU {
    public func setCPUID(_ leaves: [CPUIDLeaf]) throws(SwiftletError) {
        let size = 8 + leaves.count * MemoryLayout<kvm_cpuid_entry2>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        raw.storeBytes(of: UInt32(leaves.count), as: UInt32.self)
        let entries = (raw + 8).bindMemory(to: kvm_cpuid_entry2.self, capacity: leaves.count)
        for (i, leaf) in leaves.enumerated() {
            var e = kvm_cpuid_entry2()
            e.function = leaf.function; e.index = leaf.index; e.flags = leaf.flags
            e.eax = leaf.eax; e.ebx = leaf.ebx; e.ecx = leaf.ecx; e.edx = leaf.edx
            entries[i] = e
        }
        guard sl_ioctl(fd, SL_KVM_SET_CPUID2, raw) == 0 else { throw .lastSystemError("KVM_SET_CPUID2") }
    }

    public func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(SwiftletError) {
        let size = 8 + msrs.count * MemoryLayout<kvm_msr_entry>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        raw.storeBytes(of: UInt32(msrs.count), as: UInt32.self)
        let entries = (raw + 8).bindMemory(to: kvm_msr_entry.self, capacity: msrs.count)
        for (i, msr) in msrs.enumerated() {
            entries[i] = kvm_msr_entry(index: msr.index, reserved: 0, data: msr.value)
        }
        let written = sl_ioctl(fd, SL_KVM_SET_MSRS, raw)
        guard written == Int32(msrs.count) else {
            if written < 0 { throw .lastSystemError("KVM_SET_MSRS") }
            throw .unsupported("KVM_SET_MSRS: KVM refused MSR 0x\(hex(UInt64(msrs[Int(written)].index)))")
        }
    }

    /// LAPIC LINT0 as ExtINT (the PIC) and LINT1 as NMI, as a PC's BIOS leaves them.
    public func setLocalInterruptPins() throws(SwiftletError) {
        var lapic = kvm_lapic_state()
        guard sl_ioctl(fd, SL_KVM_GET_LAPIC, &lapic) == 0 else { throw .lastSystemError("KVM_GET_LAPIC") }
        withUnsafeMutableBytes(of: &lapic.regs) { regs in
            func setDeliveryMode(_ offset: Int, _ mode: UInt32) {
                var value = regs.load(fromByteOffset: offset, as: UInt32.self)
                value = (value & ~0x700) | (mode << 8)
                regs.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
            }
            setDeliveryMode(0x350, 7)   // APIC_LVT0: ExtINT
            setDeliveryMode(0x360, 4)   // APIC_LVT1: NMI
        }
        guard sl_ioctl(fd, SL_KVM_SET_LAPIC, &lapic) == 0 else { throw .lastSystemError("KVM_SET_LAPIC") }
    }
}
#endif
