import CLinux
import KVM
import SwiftletCore

// Control register and EFER bits (Intel SDM vol. 3, 2.5 and 2.2.1).
private let CR0_PE: UInt64 = 1 << 0
private let CR0_MP: UInt64 = 1 << 1
private let CR0_ET: UInt64 = 1 << 4
private let CR0_NE: UInt64 = 1 << 5
private let CR0_WP: UInt64 = 1 << 16
private let CR0_AM: UInt64 = 1 << 18
private let CR0_PG: UInt64 = 1 << 31
private let CR4_PAE: UInt64 = 1 << 5
private let EFER_LME: UInt64 = 1 << 8
private let EFER_LMA: UInt64 = 1 << 10

// Page-table entry bits.
private let PTE_PRESENT: UInt64 = 1 << 0
private let PTE_WRITABLE: UInt64 = 1 << 1
private let PDE_PAGE_SIZE: UInt64 = 1 << 7

/// The GDT Linux's 64-bit boot protocol expects: __BOOT_CS = 0x10, __BOOT_DS = 0x18.
enum GDT {
    static let entries: [UInt64] = [
        0,                      // null
        0,                      // unused
        0x00AF_9B00_0000_FFFF,  // 0x10: 64-bit code, present, DPL 0, granularity 4 KiB
        0x00CF_9300_0000_FFFF,  // 0x18: data, read/write, 32-bit, 4 GiB
        0x0080_8B00_0000_0000,  // 0x20: TSS (busy), only so TR is valid for VMX
    ]
    static let codeSelector: UInt16 = 0x10
    static let dataSelector: UInt16 = 0x18
    static let tssSelector: UInt16 = 0x20

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

/// Puts a vCPU in 64-bit long mode with paging on and the first 4 GiB identity mapped:
/// the state Linux's 64-bit entry point (and Swiftlet's raw test images) start in.
enum LongMode {
    static func writeTables(_ memory: GuestMemory) throws(SwiftletError) {
        for (i, entry) in GDT.entries.enumerated() {
            try memory.store(entry, at: Layout.gdt + UInt64(i * 8))
        }
        try memory.store(Layout.pdpt | PTE_PRESENT | PTE_WRITABLE, at: Layout.pml4)
        for gib in 0..<UInt64(4) {
            let directory = Layout.pageDirectories + gib * 0x1000
            try memory.store(directory | PTE_PRESENT | PTE_WRITABLE, at: Layout.pdpt + gib * 8)
            for entry in 0..<UInt64(512) {
                let address = (gib << 30) | (entry << 21)
                try memory.store(address | PTE_PRESENT | PTE_WRITABLE | PDE_PAGE_SIZE, at: directory + entry * 8)
            }
        }
    }

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
