/// The arm64 guest-physical memory map: QEMU `virt`'s, which stock kernels, firmware and
/// test suites already expect.
public enum Layout {
    public static let gicDistributor: UInt64 = 0x0800_0000
    public static let gicDistributorSize: UInt64 = 0x1_0000
    /// GICv2 fallback: the CPU interface sits right after the distributor.
    public static let gicV2CPUInterface: UInt64 = 0x0801_0000
    public static let gicV2CPUInterfaceSize: UInt64 = 0x1_0000
    /// The GICv3 ITS's control and translation frames (64 KiB each), ending where the
    /// redistributors begin.
    public static let gicITS: UInt64 = 0x0808_0000
    public static let gicITSSize: UInt64 = 0x2_0000
    public static let gicRedistributors: UInt64 = 0x080A_0000
    /// Each redistributor is two 64 KiB frames (RD_base and SGI_base).
    public static let gicRedistributorSize: UInt64 = 0x2_0000
    public static let gicRedistributorWindowEnd: UInt64 = 0x0900_0000
    public static let pl011: UInt64 = 0x0900_0000
    public static let pl011SPI: UInt32 = 1
    public static let pl031: UInt64 = 0x0901_0000
    public static let pl031SPI: UInt32 = 2
    public static let pl061: UInt64 = 0x0903_0000
    public static let pl061SPI: UInt32 = 7
    public static let primeCellSize: UInt64 = 0x1000
    public static let virtioMMIO: UInt64 = 0x0A00_0000
    public static let virtioMMIOStride: UInt64 = 0x200
    public static let virtioMMIOSlots: UInt32 = 32
    public static let virtioMMIOFirstSPI: UInt32 = 16
    /// The boot timer (`--boot-timer`). Firecracker puts it at 0x4000_0000, the start of its
    /// MMIO region, which is RAM here (QEMU virt's map); this page lies in a gap of QEMU
    /// virt's map (after the virtio-mmio transports' 16 KiB, before the platform bus at
    /// 0x0C00_0000) and is 64 KiB-aligned, so /dev/mem maps it alone with any page size.
    public static let bootTimer: UInt64 = 0x0B00_0000
    public static let ramBase: UInt64 = 0x4000_0000
    /// Images without an arm64 Image header (raw test binaries) load here.
    public static let rawImageOffset: UInt64 = 0x8_0000
    /// Linux's limit on the DTB it is handed (booting.rst).
    public static let maxDTBSize: UInt64 = 2 << 20
    /// SPIs the vGIC models: 32 private IRQs + 224 SPIs, room for 32 virtio-mmio slots.
    public static let gicIRQCount: UInt32 = 256

    /// As many vCPUs as the redistributor window before the UART holds (123).
    public static let maxVCPUs = Int((gicRedistributorWindowEnd - gicRedistributors) / gicRedistributorSize)
    /// GICv2 addresses at most eight CPUs.
    public static let maxVCPUsGICv2 = 8
}
