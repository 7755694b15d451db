import SwiftletCore

// Control register and EFER bits (Intel SDM vol. 3, 2.5 and 2.2.1).
let CR0_PE: UInt64 = 1 << 0
let CR0_MP: UInt64 = 1 << 1
let CR0_ET: UInt64 = 1 << 4
let CR0_NE: UInt64 = 1 << 5
let CR0_WP: UInt64 = 1 << 16
let CR0_AM: UInt64 = 1 << 18
let CR0_PG: UInt64 = 1 << 31
let CR4_PAE: UInt64 = 1 << 5
let EFER_LME: UInt64 = 1 << 8
let EFER_LMA: UInt64 = 1 << 10

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
}
