#if arch(x86_64)
import CLinux
import KVM
import SwiftletCore

extension GDT {
    /// A kvm_segment from a GDT descriptor.
    static func segment(_ index: Int) -> kvm_segment {
        let d = entries[index]
        var s = kvm_segment()
        s.base = ((d >> 16) & 0xFF_FFFF) | (((d >> 56) & 0xFF) << 24)
        let limit = UInt32(truncatingIfNeeded: (d & 0xFFFF) | (((d >> 48) & 0xF) << 16))
        s.g = UInt8((d >> 55) & 1)
        s.limit = s.g != 0 ? (limit << 12) | 0xFFF : limit
        s.selector = UInt16(index * 8)
        s.type = UInt8((d >> 40) & 0xF)
        s.s = UInt8((d >> 44) & 1)
        s.dpl = UInt8((d >> 45) & 3)
        s.present = UInt8((d >> 47) & 1)
        s.avl = UInt8((d >> 52) & 1)
        s.l = UInt8((d >> 53) & 1)
        s.db = UInt8((d >> 54) & 1)
        return s
    }
}

extension LongMode {
    static func enter(_ vcpu: KVMVCPU, entry: UInt64, bootParams: UInt64) throws(SwiftletError) {
        var sregs = try vcpu.getSregs()
        let code = GDT.segment(2)
        let data = GDT.segment(3)
        sregs.cs = code
        sregs.ds = data
        sregs.es = data
        sregs.fs = data
        sregs.gs = data
        sregs.ss = data
        sregs.tr = GDT.segment(4)
        sregs.gdt.base = Layout.gdt
        sregs.gdt.limit = UInt16(GDT.entries.count * 8 - 1)
        sregs.cr3 = Layout.pml4
        sregs.cr4 = CR4_PAE
        sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG
        sregs.efer = EFER_LME | EFER_LMA
        try vcpu.setSregs(sregs)

        var regs = kvm_regs()
        regs.rflags = 0x2       // bit 1 is reserved and always set
        regs.rip = entry
        regs.rsi = bootParams   // the 64-bit boot protocol passes boot_params in %rsi
        try vcpu.setRegs(regs)

        var fpu = kvm_fpu()
        fpu.fcw = 0x37F         // FNINIT state
        fpu.mxcsr = 0x1F80      // SSE exceptions masked
        try vcpu.setFPU(fpu)
    }
}
#endif
