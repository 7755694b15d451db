import CLinux
import Devices
import KVM
import SwiftletCore
import VMM

/// The arm64 machine: QEMU virt's memory map, an in-kernel vGIC, PL011 console, PSCI
/// through KVM, and a device tree generated for each guest.
public enum ARM64Machine: Machine {
    public static let name = "arm64"

    /// Checks what can be checked before touching KVM, and lays out RAM.
    public static func plan(_ config: VMConfig) throws(SwiftletError) -> (kernel: ImageFile, initrd: ImageFile?, boot: BootPlan) {
        try config.validate()
        guard config.cpus <= Layout.maxVCPUs else {
            throw .invalidArgument("--cpus \(config.cpus): the GICv3 redistributor window holds at most \(Layout.maxVCPUs) vCPUs")
        }
        guard let kernelPath = config.kernelPath else { throw .invalidArgument("no kernel given (--kernel PATH)") }
        let kernel = try ImageFile.open(kernelPath, what: "kernel")
        let initrd = try config.initrdPath.map { (path) throws(SwiftletError) in try ImageFile.open(path, what: "initrd") }
        let placement = try ImageLoader.place(try kernel.header(), ramBase: Layout.ramBase, ramSize: config.memoryBytes)
        let boot = try BootPlan.make(kernel: placement, initrdSize: initrd?.size,
                                     ramBase: Layout.ramBase, ramSize: config.memoryBytes)
        return (kernel, initrd, boot)
    }

    public static func deviceTree(_ config: VMConfig, boot: BootPlan, gic: GICVersion, rngSeed: [UInt8]) throws(SwiftletError) -> [UInt8] {
        var tree = DeviceTreeConfig(cpus: config.cpus, memorySize: config.memoryBytes)
        tree.gic = gic
        tree.bootargs = config.cmdline ?? defaultCmdline
        tree.initrdRange = boot.initrd
        tree.rngSeed = rngSeed
        tree.pmu = config.pmu
        let dtb = try DeviceTree.generate(tree)
        guard UInt64(dtb.count) <= Layout.maxDTBSize else { throw .invalidArgument("device tree of \(dtb.count) bytes exceeds 2 MiB") }
        return dtb
    }

    /// The DTB `build` would give the guest: GICv3 if this host's KVM can create one.
    public static func deviceTreeBlob(_ config: VMConfig, system: KVMSystem) throws(SwiftletError) -> [UInt8] {
        let (_, _, boot) = try plan(config)
        #if arch(arm64)
        let probe = try system.createVM()
        let gic = try VGIC.probe(vm: probe, cpus: config.cpus)
        #else
        let gic = GICVersion.v3
        #endif
        return try deviceTree(config, boot: boot, gic: gic, rngSeed: randomBytes(32))
    }

    public static let defaultCmdline = "console=ttyAMA0 panic=-1"

    public static func build(_ config: VMConfig, system: KVMSystem, console: any ConsoleSink) throws(SwiftletError) -> VM {
        #if arch(arm64)
        let (kernel, initrd, boot) = try plan(config)
        let memory = try GuestMemory(regions: [.init(guestBase: Layout.ramBase, size: config.memoryBytes)])
        let kvm = try system.createVM()
        try kvm.map(memory)

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
        let gic = try VGIC(vm: kvm, cpus: config.cpus)
        try gic.finalize()
        if config.pmu {
            // The PMU's overflow interrupt (a PPI) is set after the vGIC is initialised.
            for vcpu in vcpus { try CPUFeatures.initializePMU(vcpu) }
        }

        let mmio = Bus(name: "mmio")
        let consoleSpace = try EventNotifier()
        let uart = PL011(output: console, irq: SPILine(vm: kvm, spi: Layout.pl011SPI), spaceNotifier: consoleSpace)
        let gpio = PL061(irq: SPILine(vm: kvm, spi: Layout.pl061SPI))
        try mmio.insert(uart, base: Layout.pl011, size: Layout.primeCellSize)
        try mmio.insert(PL031(irq: SPILine(vm: kvm, spi: Layout.pl031SPI), now: wallClockSeconds),
                        base: Layout.pl031, size: Layout.primeCellSize)
        try mmio.insert(gpio, base: Layout.pl061, size: Layout.primeCellSize)

        let dtb = try deviceTree(config, boot: boot, gic: gic.version, rngSeed: randomBytes(32))
        try kernel.copy(into: memory, at: boot.kernel.loadAddress, length: kernel.size)
        if let initrd, let range = boot.initrd { try initrd.copy(into: memory, at: range.lowerBound, length: initrd.size) }
        try memory.write(dtb, at: boot.dtbAddress)

        // booting.rst: x0 = DTB, x1-x3 = 0, PC = entry, EL1h with D, A, I and F masked.
        let boot0 = vcpus[0]
        try boot0.setOneReg(sl_arm64_reg_x(0), boot.dtbAddress)
        for n in 1...3 { try boot0.setOneReg(sl_arm64_reg_x(Int32(n)), 0) }
        try boot0.setOneReg(sl_arm64_reg_pc(), boot.kernel.entry)
        try boot0.setOneReg(sl_arm64_reg_pstate(), PSTATE_EL1H_DAIF_MASKED)

        let vm = try VM(kvm: kvm, memory: memory, mmioBus: mmio, pioBus: Bus(name: "pio"), vcpus: vcpus)
        vm.retain(gic)
        vm.consoleInput = uart
        vm.consoleSpace = consoleSpace
        vm.powerButton = GPIOPowerKey(gpio: gpio)
        return vm
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
