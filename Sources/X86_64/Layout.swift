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
    /// ACPI tables (RSDP first): in the e820-reserved range below 1 MiB, where Linux's legacy
    /// RSDP scan (0xE0000–0xFFFFF) also looks; at most ACPITables.maxSize bytes.
    static let acpiTables: UInt64 = 0xE_0000
    static let kernel: UInt64 = 0x10_0000
    /// RAM stops below the 32-bit MMIO hole; the rest goes above 4 GiB.
    static let mmioHoleStart: UInt64 = 0xC000_0000
    static let highRAMStart: UInt64 = 0x1_0000_0000
    /// KVM on Intel wants three pages for the TSS in guest-physical space outside RAM.
    static let tss: UInt64 = 0xFFFB_D000
    static let serialCOM1: UInt64 = 0x3F8
    static let serialCOM1IRQ: UInt32 = 4
    static let keyboardIRQ: UInt32 = 1
    /// The ACPI sleep control and status register (FADT SLEEP_CONTROL_REG/SLEEP_STATUS_REG):
    /// the port of QEMU's PC power-management block, free on this machine.
    static let acpiSleepControl: UInt64 = 0x600
    /// The RTC's ISA line; described (PNP0B00) though the CMOS model raises no interrupt.
    static let cmosIRQ: UInt32 = 8
    /// virtio-mmio windows in the 32-bit MMIO hole, one 4 KiB page each.
    static let virtioMMIO: UInt64 = 0xD000_0000
    static let virtioMMIOStride: UInt64 = 0x1000
    /// The boot timer (`--boot-timer`): where Firecracker 1.12 puts it, first in its MMIO
    /// window (MMIO_MEM_START = 4 GiB - 768 MiB), so guests written for Firecracker find it.
    /// It takes the first virtio-mmio window; the virtio devices then start one page up,
    /// at 0xD000_1000, as in Firecracker.
    static let bootTimer: UInt64 = virtioMMIO
    /// IOAPIC pins for virtio: 5–23 as in Firecracker, less the RTC's 8 (the ones below 5
    /// belong to the PIT, the keyboard and COM1).
    static let virtioGSIs: [UInt32] = Array(5...23).filter { $0 != cmosIRQ }
}
