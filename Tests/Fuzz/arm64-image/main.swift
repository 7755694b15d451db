import ARM64
import FuzzKit
import SwiftletCore

// The arm64 kernel header parser and boot plan: ImageLoader.place on the start of a
// kernel file (arm64 Image with or without an EFI stub's PE header, or a raw binary) and
// its size, then BootPlan.make with an initrd size. Either may refuse the input; neither
// may trap, and what they accept must fit: the kernel's footprint inside RAM, the DTB in
// the top 2 MiB, the initrd page-aligned between them.
//
// Input: KernelInput's 35-byte prefix (FuzzKit/KernelInput.swift), then the file's start.

runFuzzer { buffer in
    let kernel = KernelInput(buffer)
    let ramBase = kernel.ramBase ?? Layout.ramBase
    let ramSize = kernel.ramSize
    guard let placement = accepted({ () throws(SwiftletError) in
        try ImageLoader.place(kernel.header, ramBase: ramBase, ramSize: ramSize)
    }) else { return }
    require(placement.loadAddress >= ramBase, "kernel placed below the RAM base")
    let offset = placement.loadAddress - ramBase
    require(placement.footprint <= ramSize && offset <= ramSize - placement.footprint,
            "kernel at +0x\(hex(offset)) with footprint 0x\(hex(placement.footprint)) runs past \(ramSize) bytes of RAM")
    require(placement.entry == placement.loadAddress, "entry is not the load address")
    require(!placement.isImage || placement.loadAddress % 4096 == 0, "Image load address not page-aligned")

    guard let plan = accepted({ () throws(SwiftletError) in
        try BootPlan.make(kernel: placement, initrdSize: kernel.initrdSize, ramBase: ramBase, ramSize: ramSize)
    }) else { return }
    let kernelEnd = placement.loadAddress + placement.footprint
    require(plan.dtbAddress == ramBase + ramSize - Layout.maxDTBSize, "DTB not in the top 2 MiB")
    require(plan.dtbAddress >= kernelEnd, "DTB overlaps the kernel")
    require((plan.initrd == nil) == (kernel.initrdSize == nil), "initrd given but not placed, or the reverse")
    if let initrd = plan.initrd {
        require(initrd.upperBound - initrd.lowerBound == kernel.initrdSize, "initrd range size differs from the initrd")
        require(initrd.lowerBound % 4096 == 0, "initrd not page-aligned")
        require(initrd.lowerBound >= kernelEnd && initrd.upperBound <= plan.dtbAddress, "initrd overlaps the kernel or the DTB")
    }
}
