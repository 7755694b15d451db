import CLinux
import Devices
import KVM
import SwiftletCore
import VMM

/// The arm64 machine: QEMU virt's memory map, an in-kernel vGIC, PL011 console, PSCI
/// through KVM, and a device tree generated for each guest from the device records.
public enum ARM64Machine: Machine {
    public static let name = "arm64"
    public static let defaultCmdline = "console=ttyAMA0 panic=-1"

    /// virtio-mmio windows of 0x200 from 0x0A00_0000, SPI 16 + n (QEMU virt's 32 slots).
    public static let virtioSlots = VirtioSlots(base: Layout.virtioMMIO, stride: Layout.virtioMMIOStride,
                                                irqs: (0..<Layout.virtioMMIOSlots).map { Layout.virtioMMIOFirstSPI + $0 })

    public static func addFixedDevices(to devices: inout DeviceManager, config: VMConfig) throws(SwiftletError) {
        try devices.addFixed(.pl011, .mmio, base: Layout.pl011, size: Layout.primeCellSize, irq: Layout.pl011SPI)
        try devices.addFixed(.pl031, .mmio, base: Layout.pl031, size: Layout.primeCellSize, irq: Layout.pl031SPI)
        try devices.addFixed(.pl061, .mmio, base: Layout.pl061, size: Layout.primeCellSize, irq: Layout.pl061SPI)
        if config.bootTimer { try devices.addFixed(.bootTimer, .mmio, base: Layout.bootTimer, size: BootTimer.size, irq: nil) }
    }

    public struct BootPlan {
        let kernel: ImageFile
        let initrd: ImageFile?
        let layout: ARM64.BootPlan
    }

    public static func plan(_ config: VMConfig, devices: DeviceManager) throws(SwiftletError) -> BootPlan {
        guard config.cpus <= Layout.maxVCPUs else {
            throw .invalidArgument("--cpus \(config.cpus): the GICv3 redistributor window holds at most \(Layout.maxVCPUs) vCPUs")
        }
        let (kernel, initrd) = try config.openBootImages()
        let placement = try ImageLoader.place(try kernel.header(), ramBase: Layout.ramBase, ramSize: config.memoryBytes)
        let layout = try ARM64.BootPlan.make(kernel: placement, initrdSize: initrd?.size,
                                             ramBase: Layout.ramBase, ramSize: config.memoryBytes)
        return BootPlan(kernel: kernel, initrd: initrd, layout: layout)
    }

    public static func ramRegions(_ config: VMConfig) -> [GuestMemory.Region] {
        [.init(guestBase: Layout.ramBase, size: config.memoryBytes)]
    }

    public static func deviceTree(_ config: VMConfig, devices: DeviceManager, boot: ARM64.BootPlan, gic: GICModel,
                                  rngSeed: [UInt8]) throws(SwiftletError) -> [UInt8] {
        var tree = DeviceTreeConfig(cpus: config.cpus, memorySize: config.memoryBytes, devices: devices.records)
        tree.gic = gic.version
        tree.its = gic.its
        tree.bootargs = config.bootArguments(default: defaultCmdline)
        tree.initrdRange = boot.initrd
        tree.rngSeed = rngSeed
        tree.pmu = config.pmu
        let dtb = try DeviceTree.generate(tree)
        guard UInt64(dtb.count) <= Layout.maxDTBSize else { throw .invalidArgument("device tree of \(dtb.count) bytes exceeds 2 MiB") }
        return dtb
    }

    /// The DTB `build` would give the guest: GICv3 (with an ITS if KVM offers one) if this
    /// host's KVM can create one, probed the way `createInterruptController` decides.
    public static func deviceTreeBlob(_ config: VMConfig, system: KVMSystem) throws(SwiftletError) -> [UInt8] {
        try config.validate()
        let records = try devices(config)
        let boot = try plan(config, devices: records)
        #if arch(arm64)
        let probe = try system.createVM()
        let gic = try VGIC.probe(vm: probe, cpus: config.cpus)
        #else
        let gic = GICModel(version: .v3, its: true)
        #endif
        return try deviceTree(config, devices: records, boot: boot.layout, gic: gic, rngSeed: randomBytes(32))
    }

    public static func prepare(_ kvm: KVMVM) throws(SwiftletError) {}

    public static func createVCPUs(_ kvm: KVMVM, config: VMConfig, system: KVMSystem) throws(SwiftletError) -> [KVMVCPU] {
        #if arch(arm64)
        // A GICv2-only host's KVM refuses a ninth vCPU (KVM_CREATE_VCPU: EINVAL); the probe
        // says why first, in the words the GIC's own creation would use.
        _ = try VGIC.probe(vm: kvm, cpus: config.cpus)
        let target = try kvm.preferredTarget()
        let optional = try CPUFeatures.requested(config, check: { kvm.check($0) })
        var vcpus: [KVMVCPU] = []
        for id in 0..<config.cpus {
            let vcpu = try kvm.createVCPU(id: id)
            // Secondaries start powered off; the guest brings them up with PSCI CPU_ON.
            var features = [UInt32(KVM_ARM_VCPU_PSCI_0_2)] + optional
            if id > 0 { features.append(UInt32(KVM_ARM_VCPU_POWER_OFF)) }
            try vcpu.initialize(target: target, features: features)
            if config.sve { try vcpu.finalize(feature: Int32(CPUFeatures.sve)) }
            vcpus.append(vcpu)
        }
        return vcpus
        #else
        throw .unsupported("the arm64 machine runs on arm64 hosts only")
        #endif
    }

    public static func createInterruptController(_ kvm: KVMVM, vcpus: [KVMVCPU], config: VMConfig,
                                                 devices: MachineDevices) throws(SwiftletError) -> GICModel {
        #if arch(arm64)
        let gic = try VGIC(vm: kvm, cpus: config.cpus)
        try gic.finalize(vm: kvm)
        devices.retain(gic)
        if config.pmu {
            // The PMU's overflow interrupt (a PPI) is set after the vGIC is initialised.
            for vcpu in vcpus { try CPUFeatures.initializePMU(vcpu) }
        }
        return gic.model
        #else
        throw .unsupported("the arm64 machine runs on arm64 hosts only")
        #endif
    }

    public static func interruptLine(_ kvm: KVMVM, irq: UInt32) -> any InterruptLine { SPILine(vm: kvm, spi: irq) }

    public static func attachFixed(_ record: DeviceRecord, to devices: MachineDevices) throws(SwiftletError) {
        let line = interruptLine(devices.kvm, irq: record.irq ?? 0)
        switch record.kind {
        case .pl011:
            let space = try EventNotifier()
            let uart = PL011(output: devices.console, irq: line, spaceNotifier: space)
            try devices.insert(uart, at: record)
            devices.consoleInput = uart
            devices.consoleSpace = space
        case .pl031:
            // The match interrupt comes from a host timer on the I/O thread, armed by the
            // device when the guest writes RTCMR or RTCLR.
            let timer = try TimerFD()
            let rtc = PL031(irq: line, clock: PL031.hostClock) { timer.arm(afterNanoseconds: $0) }
            try devices.watchHostTimer(timer) { rtc.timerExpired() }
            try devices.insert(rtc, at: record)
        case .pl061:
            let gpio = PL061(irq: line)
            try devices.insert(gpio, at: record)
            devices.powerButton = GPIOPowerKey(gpio: gpio)
        default:
            throw .invalidArgument("the arm64 machine has no \(record.kind) device")
        }
    }

    public static func boot(_ plan: BootPlan, vcpus: [KVMVCPU], memory: GuestMemory, devices: DeviceManager,
                            interruptController gic: GICModel, config: VMConfig) throws(SwiftletError) {
        #if arch(arm64)
        let layout = plan.layout
        let dtb = try deviceTree(config, devices: devices, boot: layout, gic: gic, rngSeed: randomBytes(32))
        try plan.kernel.copy(into: memory, at: layout.kernel.loadAddress, length: plan.kernel.size)
        if let initrd = plan.initrd, let range = layout.initrd { try initrd.copy(into: memory, at: range.lowerBound, length: initrd.size) }
        try memory.write(dtb, at: layout.dtbAddress)

        // booting.rst: x0 = DTB, x1-x3 = 0, PC = entry, EL1h with D, A, I and F masked.
        let boot0 = vcpus[0]
        try boot0.setOneReg(sl_arm64_reg_x(0), layout.dtbAddress)
        for n in 1...3 { try boot0.setOneReg(sl_arm64_reg_x(Int32(n)), 0) }
        try boot0.setOneReg(sl_arm64_reg_pc(), layout.kernel.entry)
        try boot0.setOneReg(sl_arm64_reg_pstate(), PSTATE_EL1H_DAIF_MASKED)
        #else
        throw .unsupported("the arm64 machine runs on arm64 hosts only")
        #endif
    }
}

/// The gpio-keys power key on PL061 line 3 (KEY_POWER in the device tree).
final class GPIOPowerKey: PowerButton {
    private let gpio: PL061
    init(gpio: PL061) { self.gpio = gpio }
    func setPressed(_ pressed: Bool) { gpio.setInput(line: Int(powerKeyGPIOLine), high: pressed) }
}

/// PSR_MODE_EL1h | PSR_F_BIT | PSR_I_BIT | PSR_A_BIT | PSR_D_BIT
let PSTATE_EL1H_DAIF_MASKED: UInt64 = 0x5 | 0x40 | 0x80 | 0x100 | 0x200

/// Host entropy for the guest (chosen/rng-seed); empty if the host has none to give.
func randomBytes(_ count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    let n = bytes.withUnsafeMutableBytes { getrandom($0.baseAddress, count, 0) }
    return n == count ? bytes : []
}
