import FuzzKit
import SwiftletCore
import X86_64

// The x86_64 kernel header parser and boot plan: X86BootPlan.make (which parses a bzImage's
// setup header with BzImage, or takes a raw binary) on the start of a kernel file and its
// size, with an initrd size, a command line and the end of low RAM as X86Machine computes
// it; then BootParams.make, the zero page, from what was accepted. Refusals are fine; traps
// are bugs, and an accepted plan must fit the file and guest memory.
//
// Input: KernelInput's 35-byte prefix (FuzzKit/KernelInput.swift), then the file's start.

let kernelAddress: UInt64 = 0x10_0000       // Layout.kernel
let cmdlineAddress: UInt64 = 0x2_0000       // Layout.cmdline

runFuzzer { buffer in
    let kernel = KernelInput(buffer)
    let regions = X86Machine.ramRegions(memoryBytes: kernel.ramSize)
    let lowRAMEnd = regions[0].size
    guard let plan = accepted({ () throws(SwiftletError) in
        try X86BootPlan.make(kernel: kernel.header, initrdSize: kernel.initrdSize, cmdline: kernel.cmdline, lowRAMEnd: lowRAMEnd)
    }) else { return }
    let fileSize = kernel.header.fileSize
    // An ELF file is the vmlinux target's; here it is only one more refusal or plan.
    guard plan.format != .vmlinux else { return }
    require(plan.segments.count == 1 && plan.segments[0].address == kernelAddress, "not one piece at 1 MiB")
    let piece = plan.segments[0]
    require(piece.fileOffset <= fileSize && piece.fileSize <= fileSize - piece.fileOffset,
            "kernel bytes \(piece.fileOffset)+\(piece.fileSize) lie past the file's \(fileSize)")
    require(piece.memorySize == piece.fileSize, "a zero-filled tail on a bzImage or raw binary")
    require(piece.fileSize <= lowRAMEnd - kernelAddress, "kernel does not fit below the end of low RAM")
    require(plan.cmdline.last == 0 && !plan.cmdline.dropLast().contains(0), "command line is not one C string")
    if let initrd = plan.initrd {
        require(initrd.upperBound - initrd.lowerBound == kernel.initrdSize, "initrd range size differs from the initrd")
        require(initrd.upperBound <= lowRAMEnd && initrd.lowerBound % 4096 == 0, "initrd outside low RAM or unaligned")
        require(initrd.lowerBound >= kernelAddress + piece.fileSize, "initrd overlaps the kernel")
    }
    guard let image = plan.bzImage else {
        require(plan.initrd == nil && plan.entry == kernelAddress, "raw binary with an initrd or another entry")
        return
    }
    require(plan.entry == kernelAddress + 0x200, "bzImage entry is not startup_64")
    require(piece.fileOffset == image.payloadOffset && piece.fileSize == image.payloadSize, "payload mismatch")
    require(image.footprint <= lowRAMEnd - kernelAddress, "bzImage footprint does not fit")
    if let initrd = plan.initrd {
        require(initrd.lowerBound >= kernelAddress + image.footprint, "initrd overlaps the decompressing kernel")
    }
    require(image.headerEnd <= image.header.count && image.headerEnd <= 4096, "setup header end 0x\(hex(UInt64(image.headerEnd)))")
    let page = BootParams.make(image: image, cmdlineAddress: cmdlineAddress, initrd: plan.initrd,
                               e820: BootParams.e820(ram: regions))
    require(page.count == 4096, "boot_params is \(page.count) bytes")
}
