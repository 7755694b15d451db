/// Where things go in x86_64 guest-physical memory (the Linux boot protocol's usual spots).
enum Layout {
    static let gdt: UInt64 = 0x500
    static let bootParams: UInt64 = 0x7000
    static let pml4: UInt64 = 0x9000
    static let pdpt: UInt64 = 0xA000
    /// Four page directories of 2 MiB pages identity-map the first 4 GiB.
    static let pageDirectories: UInt64 = 0xB000
    static let cmdline: UInt64 = 0x20000
    static let cmdlineMax: UInt64 = 0x10000
    static let mpTable: UInt64 = BootParams.ebdaStart
    static let kernel: UInt64 = 0x10_0000
    /// RAM stops below the 32-bit MMIO hole; the rest goes above 4 GiB.
    static let mmioHoleStart: UInt64 = 0xC000_0000
    static let highRAMStart: UInt64 = 0x1_0000_0000
    /// KVM on Intel wants three pages for the TSS in guest-physical space outside RAM.
    static let tss: UInt64 = 0xFFFB_D000
    static let serialCOM1: UInt64 = 0x3F8
    static let serialCOM1IRQ: UInt32 = 4
    static let keyboardIRQ: UInt32 = 1
}
