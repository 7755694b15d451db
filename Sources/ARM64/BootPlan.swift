import SwiftletCore

/// Where the kernel, initrd and DTB go in guest RAM. The DTB takes the top 2 MiB (Linux
/// accepts up to 2 MiB, 8-byte aligned), the initrd sits page-aligned just below it, and
/// neither may overlap the kernel's full footprint (text + BSS).
public struct BootPlan: Equatable {
    public let kernel: KernelPlacement
    public let dtbAddress: UInt64
    public let initrd: Range<UInt64>?

    public static func make(kernel: KernelPlacement, initrdSize: UInt64?, ramBase: UInt64, ramSize: UInt64) throws(SwiftletError) -> BootPlan {
        let (ramEnd, ramOverflow) = ramBase.addingReportingOverflow(ramSize)
        let (kernelEnd, kernelOverflow) = kernel.loadAddress.addingReportingOverflow(kernel.footprint)
        guard !ramOverflow, !kernelOverflow, kernel.loadAddress >= ramBase, ramSize >= Layout.maxDTBSize,
              ramEnd - Layout.maxDTBSize >= kernelEnd else {
            throw .invalidArgument("guest memory of \(ramSize >> 20) MiB is too small for the kernel (\(mebibytesRoundedUp(kernel.footprint)) MiB) and the device tree (2 MiB); raise --memory")
        }
        let dtb = ramEnd - Layout.maxDTBSize
        guard let initrdSize else { return BootPlan(kernel: kernel, dtbAddress: dtb, initrd: nil) }
        guard initrdSize > 0 else { throw .invalidImage("the initrd is empty") }
        let page: UInt64 = 4096
        guard initrdSize <= dtb - kernelEnd, (dtb - initrdSize) & ~(page - 1) >= kernelEnd else {
            throw .invalidArgument("guest memory of \(ramSize >> 20) MiB is too small for the kernel (\(mebibytesRoundedUp(kernel.footprint)) MiB), the initrd (\(mebibytesRoundedUp(initrdSize)) MiB) and the device tree; raise --memory")
        }
        let start = (dtb - initrdSize) & ~(page - 1)
        return BootPlan(kernel: kernel, dtbAddress: dtb, initrd: start..<(start + initrdSize))
    }
}
