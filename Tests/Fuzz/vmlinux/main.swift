import FuzzKit
import SwiftletCore
import X86_64

// The x86_64 ELF vmlinux parser and boot plan: X86BootPlan.make (which parses the ELF header
// and program headers with Vmlinux) on the start of a kernel file and its size, with an
// initrd size, a command line and the end of low RAM as X86Machine computes it; then
// BootParams.make(vmlinux:), the zero page Swiftlet writes for a kernel without a setup
// header. Refusals are fine; traps are bugs, and an accepted plan must keep every segment
// inside the file and inside guest RAM above the boot data, apart from each other and from
// the initrd, with the entry in loaded bytes.
//
// Input: KernelInput's 35-byte prefix (FuzzKit/KernelInput.swift), then the file's start
// (seeds: Tests/Fuzz/make-seeds vmlinux).

let kernelAddress: UInt64 = 0x10_0000       // Layout.kernel: everything below is boot data
let cmdlineAddress: UInt64 = 0x2_0000       // Layout.cmdline

runFuzzer { buffer in
    let kernel = KernelInput(buffer)
    let regions = X86Machine.ramRegions(memoryBytes: kernel.ramSize)
    let lowRAMEnd = regions[0].size
    guard let plan = accepted({ () throws(SwiftletError) in
        try X86BootPlan.make(kernel: kernel.header, initrdSize: kernel.initrdSize, cmdline: kernel.cmdline, lowRAMEnd: lowRAMEnd)
    }) else { return }
    guard plan.format == .vmlinux else { return }   // bzImage and raw: the bzimage target's
    let fileSize = kernel.header.fileSize
    require(!plan.segments.isEmpty, "a vmlinux plan without segments")
    var previousEnd = kernelAddress
    for segment in plan.segments {
        require(segment.fileOffset <= fileSize && segment.fileSize <= fileSize - segment.fileOffset,
                "segment bytes \(segment.fileOffset)+\(segment.fileSize) lie past the file's \(fileSize)")
        require(segment.fileSize <= segment.memorySize && segment.memorySize > 0, "segment sizes")
        require(segment.address >= previousEnd, "segment at 0x\(hex(segment.address)) below 1 MiB, unsorted or overlapping")
        require(segment.memorySize <= lowRAMEnd && segment.address <= lowRAMEnd - segment.memorySize,
                "segment at 0x\(hex(segment.address)) past the end of low RAM")
        previousEnd = segment.end
    }
    require(plan.segments.contains { plan.entry >= $0.address && plan.entry - $0.address < $0.fileSize },
            "entry 0x\(hex(plan.entry)) outside the loaded bytes")
    require(plan.cmdline.last == 0 && !plan.cmdline.dropLast().contains(0), "command line is not one C string")
    require(plan.cmdline.count <= 2048, "command line longer than Linux's COMMAND_LINE_SIZE")
    if let initrd = plan.initrd {
        require(UInt64(initrd.count) == kernel.initrdSize, "initrd range size differs from the initrd")
        require(initrd.upperBound <= lowRAMEnd && initrd.upperBound <= 0x8000_0000 && initrd.lowerBound % 4096 == 0,
                "initrd outside low RAM, above initrd_addr_max or unaligned")
        require(initrd.lowerBound >= previousEnd, "initrd overlaps the kernel")
    }
    let page = BootParams.make(vmlinux: plan.setupHeader, cmdlineAddress: cmdlineAddress, initrd: plan.initrd,
                               e820: BootParams.e820(ram: regions))
    require(page.count == 4096, "boot_params is \(page.count) bytes")
    require(readLE32(page, at: 0x202) == 0x5372_6448 && readLE16(page, at: 0x1FE) == 0xAA55, "no HdrS/0xAA55")
    if let initrd = plan.initrd {
        require(UInt64(readLE32(page, at: 0x218)) | UInt64(readLE32(page, at: 0x0C0)) << 32 == initrd.lowerBound, "ramdisk_image")
    }
}
