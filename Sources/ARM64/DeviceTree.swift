import SwiftletCore
import VMM

public enum GICVersion: Equatable {
    case v3
    case v2
}

/// The interrupt controller a VM got: the GIC's version and whether it has an ITS (GICv3 only).
public struct GICModel: Equatable {
    public var version: GICVersion
    public var its: Bool
    public init(version: GICVersion, its: Bool) {
        self.version = version
        self.its = its && version == .v3
    }
}

/// Everything the guest's device tree describes.
public struct DeviceTreeConfig: Equatable {
    public var cpus: Int
    public var memorySize: UInt64
    public var gic: GICVersion = .v3
    /// A GICv3 ITS node under the GIC (ignored for GICv2): what `run` creates where KVM offers one.
    public var its = true
    public var bootargs: String = ""
    /// [start, end) of the initrd in guest memory.
    public var initrd: (start: UInt64, end: UInt64)? {
        get { initrdRange.map { ($0.lowerBound, $0.upperBound) } }
        set { initrdRange = newValue.map { $0.start..<$0.end } }
    }
    var initrdRange: Range<UInt64>?
    /// Entropy for the guest's early RNG (chosen/rng-seed).
    public var rngSeed: [UInt8] = []
    public var pmu = false
    /// The devices, each becoming its node (ARM64Machine.devices gives a VM's records).
    public var devices: [DeviceRecord]

    public init(cpus: Int, memorySize: UInt64, devices: [DeviceRecord] = DeviceTreeConfig.fixedDevices) {
        self.cpus = cpus
        self.memorySize = memorySize
        self.devices = devices
    }

    /// The machine's fixed devices alone (no virtio): what a VM without disks or rng gets.
    public static var fixedDevices: [DeviceRecord] {
        var manager = DeviceManager(virtio: ARM64Machine.virtioSlots)
        do { try ARM64Machine.addFixedDevices(to: &manager, config: VMConfig()) } catch { return [] }
        return manager.records
    }
}

// GIC interrupt specifier cells: type, number, flags (bindings/interrupt-controller/arm,gic*.yaml).
private let GIC_SPI: UInt32 = 0
private let GIC_PPI: UInt32 = 1
private let IRQ_TYPE_LEVEL_HIGH: UInt32 = 4
private let IRQ_TYPE_EDGE_RISING: UInt32 = 1
private let GPIO_ACTIVE_HIGH: UInt32 = 0
private let KEY_POWER: UInt32 = 116

// Architected timer PPIs as on QEMU virt: secure, non-secure, virtual, hypervisor.
private let timerPPIs: [UInt32] = [13, 14, 11, 10]
private let gicMaintenancePPI: UInt32 = 9
/// The PMU overflow interrupt as a PPI number: the INTID KVM is given, less the first PPI's.
private let pmuPPI: UInt32 = CPUFeatures.pmuInterrupt - 16

private enum Phandle {
    static let gic: UInt32 = 1
    static let apbClock: UInt32 = 2
    static let gpio: UInt32 = 3
    static let its: UInt32 = 4
}

/// The power key sits on PL061 line 3, as on QEMU virt.
public let powerKeyGPIOLine: UInt32 = 3

public enum DeviceTree {
    /// MPIDR_EL1 affinity KVM gives vCPU `index` (16 per Aff0 cluster), which is what a
    /// cpu node's `reg` must hold for PSCI CPU_ON to find it.
    public static func mpidr(_ index: Int) -> UInt64 {
        let id = UInt64(index)
        return (id & 0xF) | ((id >> 4) & 0xFF) << 8 | ((id >> 12) & 0xFF) << 16
    }

    public static func generate(_ config: DeviceTreeConfig) throws(SwiftletError) -> [UInt8] {
        let fdt = try FDTWriter()
        try fdt.beginNode("")
        try fdt.property("compatible", string: "linux,dummy-virt")
        try fdt.property("model", string: "Swiftlet arm64 virtual machine")
        try fdt.property("#address-cells", u32: 2)
        try fdt.property("#size-cells", u32: 2)
        try fdt.property("interrupt-parent", u32: Phandle.gic)

        let console = config.devices.first { $0.kind == .pl011 }.map { "/pl011@\(hex($0.base))" }
        try chosen(fdt, config, console: console)
        if let console {
            try fdt.beginNode("aliases")
            try fdt.property("serial0", string: console)
            try fdt.endNode()
        }

        try fdt.beginNode("memory@\(hex(Layout.ramBase))")
        try fdt.property("device_type", string: "memory")
        try fdt.property("reg", u64s: [Layout.ramBase, config.memorySize])
        try fdt.endNode()
        try contiguousMemoryPool(fdt, config)

        try cpus(fdt, config)
        try fdt.beginNode("psci")
        try fdt.property("compatible", strings: ["arm,psci-1.0", "arm,psci-0.2"])
        try fdt.property("method", string: "hvc")
        try fdt.endNode()

        try interruptController(fdt, config)
        try timer(fdt, config)
        if config.pmu {
            try fdt.beginNode("pmu")
            try fdt.property("compatible", string: "arm,armv8-pmuv3")
            try fdt.property("interrupts", cells: [GIC_PPI, pmuPPI, ppiFlags(config)])
            try fdt.endNode()
        }

        try fdt.beginNode("apb-pclk")
        try fdt.property("compatible", string: "fixed-clock")
        try fdt.property("#clock-cells", u32: 0)
        try fdt.property("clock-frequency", u32: 24_000_000)
        try fdt.property("clock-output-names", string: "clk24mhz")
        try fdt.property("phandle", u32: Phandle.apbClock)
        try fdt.endNode()

        for record in config.devices { try node(fdt, record) }
        if config.devices.contains(where: { $0.kind == .pl061 }) { try powerKey(fdt) }

        try fdt.endNode()
        return try fdt.finish()
    }

    /// The size of the guest's default contiguous-memory (CMA) pool: a sixteenth of its RAM,
    /// at most 64 MiB, in whole 4 MiB blocks (a page block with 4 KiB pages); nil below
    /// 64 MiB of RAM. Without a pool in the tree a distribution kernel reserves its built-in
    /// default (Debian arm64: 64 MiB) wherever a free block that large exists: half of a
    /// 128 MiB guest, which unmovable allocations such as the unpacked initramfs cannot use
    /// (Linux then fails with "Initramfs unpacking failed: write error"). Virtio devices
    /// without an IOMMU need little contiguous memory. `cma=` on the command line still
    /// overrides the pool (Linux prefers it to the tree's).
    public static func contiguousMemoryPoolSize(memorySize: UInt64) -> UInt64? {
        let block: UInt64 = 4 << 20
        let size = min(memorySize / 16, 64 << 20) & ~(block - 1)
        return size > 0 ? size : nil
    }

    /// reserved-memory/linux,cma (bindings/reserved-memory/shared-dma-pool.yaml): a reusable
    /// pool the kernel places itself, below 4 GiB for 32-bit DMA as its default pool is.
    private static func contiguousMemoryPool(_ fdt: FDTWriter, _ config: DeviceTreeConfig) throws(SwiftletError) {
        guard let size = contiguousMemoryPoolSize(memorySize: config.memorySize) else { return }
        let below4GiB = min(config.memorySize, (1 << 32) - Layout.ramBase)
        try fdt.beginNode("reserved-memory")
        try fdt.property("#address-cells", u32: 2)
        try fdt.property("#size-cells", u32: 2)
        try fdt.property("ranges")
        try fdt.beginNode("linux,cma")
        try fdt.property("compatible", string: "shared-dma-pool")
        try fdt.property("reusable")
        try fdt.property("size", u64: size)
        try fdt.property("alloc-ranges", u64s: [Layout.ramBase, below4GiB])
        try fdt.property("linux,cma-default")
        try fdt.endNode()
        try fdt.endNode()
    }

    /// The node of one device record.
    private static func node(_ fdt: FDTWriter, _ record: DeviceRecord) throws(SwiftletError) {
        switch record.kind {
        case .pl011:
            try primeCell(fdt, "pl011", record, compatible: "arm,pl011", clockNames: ["uartclk", "apb_pclk"])
        case .pl031:
            try primeCell(fdt, "pl031", record, compatible: "arm,pl031", clockNames: ["apb_pclk"])
        case .pl061:
            try primeCell(fdt, "pl061", record, compatible: "arm,pl061", clockNames: ["apb_pclk"]) { () throws(SwiftletError) in
                try fdt.property("gpio-controller")
                try fdt.property("#gpio-cells", u32: 2)
                try fdt.property("phandle", u32: Phandle.gpio)
            }
        case .virtioBlock, .virtioEntropy, .virtioNet, .virtioVsock:
            // Edge-triggered: the VMM signals virtio interrupts through KVM irqfds (as QEMU virt declares them).
            try fdt.beginNode("virtio_mmio@\(hex(record.base))")
            try fdt.property("compatible", string: "virtio,mmio")
            try fdt.property("reg", u64s: [record.base, record.size])
            try fdt.property("interrupts", cells: [GIC_SPI, record.irq ?? 0, IRQ_TYPE_EDGE_RISING])
            try fdt.property("dma-coherent")
            try fdt.endNode()
        case .bootTimer:
            break   // not a device the guest's kernel drives: Firecracker describes it nowhere either
        case .serial16550, .i8042, .cmos, .acpiSleepControl:
            throw .invalidArgument("the arm64 device tree has no node for a \(record.kind)")
        }
    }

    private static func powerKey(_ fdt: FDTWriter) throws(SwiftletError) {
        try fdt.beginNode("gpio-keys")
        try fdt.property("compatible", string: "gpio-keys")
        try fdt.beginNode("poweroff")
        try fdt.property("label", string: "GPIO Key Poweroff")
        try fdt.property("linux,code", u32: KEY_POWER)
        try fdt.property("gpios", cells: [Phandle.gpio, powerKeyGPIOLine, GPIO_ACTIVE_HIGH])
        try fdt.endNode()
        try fdt.endNode()
    }

    private static func chosen(_ fdt: FDTWriter, _ config: DeviceTreeConfig, console: String?) throws(SwiftletError) {
        try fdt.beginNode("chosen")
        try fdt.property("bootargs", string: config.bootargs)
        if let console { try fdt.property("stdout-path", string: console) }
        if let initrd = config.initrdRange {
            try fdt.property("linux,initrd-start", u64: initrd.lowerBound)
            try fdt.property("linux,initrd-end", u64: initrd.upperBound)
        }
        if !config.rngSeed.isEmpty { try fdt.property("rng-seed", bytes: config.rngSeed) }
        try fdt.endNode()
    }

    private static func cpus(_ fdt: FDTWriter, _ config: DeviceTreeConfig) throws(SwiftletError) {
        try fdt.beginNode("cpus")
        try fdt.property("#address-cells", u32: 1)
        try fdt.property("#size-cells", u32: 0)
        for index in 0..<config.cpus {
            let affinity = mpidr(index)
            try fdt.beginNode("cpu@\(hex(affinity))")
            try fdt.property("device_type", string: "cpu")
            try fdt.property("compatible", string: "arm,arm-v8")
            try fdt.property("enable-method", string: "psci")
            try fdt.property("reg", u32: UInt32(affinity))
            try fdt.endNode()
        }
        try fdt.endNode()
    }

    private static func interruptController(_ fdt: FDTWriter, _ config: DeviceTreeConfig) throws(SwiftletError) {
        try fdt.beginNode("intc@\(hex(Layout.gicDistributor))")
        switch config.gic {
        case .v3:
            try fdt.property("compatible", string: "arm,gic-v3")
            try fdt.property("reg", u64s: [Layout.gicDistributor, Layout.gicDistributorSize,
                                           Layout.gicRedistributors, Layout.gicRedistributorSize * UInt64(config.cpus)])
            try fdt.property("#redistributor-regions", u32: 1)
        case .v2:
            try fdt.property("compatible", string: "arm,cortex-a15-gic")
            try fdt.property("reg", u64s: [Layout.gicDistributor, Layout.gicDistributorSize,
                                           Layout.gicV2CPUInterface, Layout.gicV2CPUInterfaceSize])
        }
        try fdt.property("#interrupt-cells", u32: 3)
        try fdt.property("interrupt-controller")
        try fdt.property("#address-cells", u32: 2)
        try fdt.property("#size-cells", u32: 2)
        try fdt.property("ranges")
        try fdt.property("interrupts", cells: [GIC_PPI, gicMaintenancePPI, ppiFlags(config)])
        try fdt.property("phandle", u32: Phandle.gic)
        if config.gic == .v3 && config.its {
            // bindings/interrupt-controller/arm,gic-v3.yaml: the ITS is a child of the GIC,
            // which therefore carries #address-cells, #size-cells and ranges (above).
            try fdt.beginNode("its@\(hex(Layout.gicITS))")
            try fdt.property("compatible", string: "arm,gic-v3-its")
            try fdt.property("msi-controller")
            try fdt.property("#msi-cells", u32: 1)
            try fdt.property("reg", u64s: [Layout.gicITS, Layout.gicITSSize])
            try fdt.property("phandle", u32: Phandle.its)
            try fdt.endNode()
        }
        try fdt.endNode()
    }

    private static func timer(_ fdt: FDTWriter, _ config: DeviceTreeConfig) throws(SwiftletError) {
        try fdt.beginNode("timer")
        try fdt.property("compatible", string: "arm,armv8-timer")
        try fdt.property("always-on")
        var cells: [UInt32] = []
        for ppi in timerPPIs { cells += [GIC_PPI, ppi, ppiFlags(config)] }
        try fdt.property("interrupts", cells: cells)
        try fdt.endNode()
    }

    /// GICv2 PPI specifiers carry a mask of the CPUs they go to; GICv3 ones do not.
    private static func ppiFlags(_ config: DeviceTreeConfig) -> UInt32 {
        guard config.gic == .v2 else { return IRQ_TYPE_LEVEL_HIGH }
        return ((1 << UInt32(min(config.cpus, 8))) - 1) << 8 | IRQ_TYPE_LEVEL_HIGH
    }

    private static func primeCell(_ fdt: FDTWriter, _ name: String, _ record: DeviceRecord, compatible: String,
                                  clockNames: [String], extra: () throws(SwiftletError) -> Void = {}) throws(SwiftletError) {
        try fdt.beginNode("\(name)@\(hex(record.base))")
        try fdt.property("compatible", strings: [compatible, "arm,primecell"])
        try fdt.property("reg", u64s: [record.base, record.size])
        try fdt.property("interrupts", cells: [GIC_SPI, record.irq ?? 0, IRQ_TYPE_LEVEL_HIGH])
        try fdt.property("clocks", cells: [UInt32](repeating: Phandle.apbClock, count: clockNames.count))
        try fdt.property("clock-names", strings: clockNames)
        try extra()
        try fdt.endNode()
    }
}
