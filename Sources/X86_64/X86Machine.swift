import CLinux
import Devices
import KVM
import SwiftletCore
import VMM

/// The x86_64 PC-like machine: RAM from 0 (split around the 32-bit MMIO hole), in-kernel
/// irqchip and PIT, COM1 16550 on IRQ 4, i8042 (keyboard, reset), CMOS RTC, an MP table.
public enum X86Machine: Machine {
    public static let name = "x86_64"

    /// RAM from 0 up to the MMIO hole, the remainder from 4 GiB.
    static func ramRegions(_ bytes: UInt64) -> [GuestMemory.Region] {
        if bytes <= Layout.mmioHoleStart { return [.init(guestBase: 0, size: bytes)] }
        return [.init(guestBase: 0, size: Layout.mmioHoleStart),
                .init(guestBase: Layout.highRAMStart, size: bytes - Layout.mmioHoleStart)]
    }

    public static func plan(_ config: VMConfig) throws(SwiftletError) -> (plan: X86BootPlan, kernel: ImageFile, initrd: ImageFile?) {
        try config.validate()
        guard config.cpus <= 254 else { throw .invalidArgument("--cpus \(config.cpus): the x86_64 machine has at most 254 vCPUs (8-bit APIC ids)") }
        guard let kernelPath = config.kernelPath else { throw .invalidArgument("no kernel given (--kernel PATH)") }
        let kernel = try ImageFile.open(kernelPath, what: "kernel")
        let initrd = try config.initrdPath.map { (path) throws(SwiftletError) in try ImageFile.open(path, what: "initrd") }
        let lowEnd = ramRegions(config.memoryBytes)[0].size
        let plan = try X86BootPlan.make(kernel: try kernel.header(), initrdSize: initrd?.size,
                                        cmdline: config.cmdline, lowRAMEnd: lowEnd)
        return (plan, kernel, initrd)
    }

    /// Writes everything the guest finds in memory at boot.
    static func writeBootData(_ plan: X86BootPlan, kernel: ImageFile, initrd: ImageFile?, cpus: Int, memory: GuestMemory) throws(SwiftletError) {
        try kernel.copy(into: memory, at: Layout.kernel, fileOffset: plan.kernelFileOffset, length: plan.kernelLength)
        try LongMode.writeTables(memory)
        try memory.write(plan.cmdline, at: Layout.cmdline)
        try memory.write(MPTable.make(cpus: cpus, at: Layout.mpTable), at: Layout.mpTable)
        if let initrd, let range = plan.initrd { try initrd.copy(into: memory, at: range.lowerBound, length: initrd.size) }
        if let image = plan.bzImage {
            let regions = memory.mappings.map { $0.region }
            let page = BootParams.make(image: image, cmdlineAddress: Layout.cmdline, initrd: plan.initrd,
                                       e820: BootParams.e820(ram: regions))
            try memory.write(page, at: Layout.bootParams)
        }
    }

    public static func build(_ config: VMConfig, system: KVMSystem, console: any ConsoleSink) throws(SwiftletError) -> VM {
        #if arch(x86_64)
        let (plan, kernel, initrd) = try plan(config)
        let memory = try GuestMemory(regions: ramRegions(config.memoryBytes))
        let kvm = try system.createVM()
        try kvm.setTSSAddress(Layout.tss)
        try kvm.createIRQChipAndPIT()
        try kvm.map(memory)
        try writeBootData(plan, kernel: kernel, initrd: initrd, cpus: config.cpus, memory: memory)

        let mmio = Bus(name: "mmio")
        let pio = Bus(name: "pio")
        let resetLine = MachineReset()
        let consoleSpace = try EventNotifier()
        let serial = Serial16550(output: console, irq: GSILine(vm: kvm, gsi: Layout.serialCOM1IRQ), spaceNotifier: consoleSpace)
        try pio.insert(serial, base: Layout.serialCOM1, size: Serial16550.size)
        let keyboard = I8042(resetLine: resetLine, irq: GSILine(vm: kvm, gsi: Layout.keyboardIRQ))
        try pio.insert(keyboard, base: I8042.base, size: I8042.size)
        try pio.insert(CMOS(now: wallClockSeconds), base: CMOS.base, size: CMOS.size)

        let supported = try system.supportedCPUID()
        var vcpus: [KVMVCPU] = []
        for id in 0..<config.cpus {
            let vcpu = try kvm.createVCPU(id: id)
            try vcpu.setCPUID(CPUID.forVCPU(supported, index: id, count: config.cpus))
            try vcpu.setMSRs(bootMSRs)
            try vcpu.setLocalInterruptPins()
            // Application processors wait for INIT/SIPI in the in-kernel LAPIC; only the
            // bootstrap processor's registers matter.
            try LongMode.enter(vcpu, entry: plan.entry, bootParams: Layout.bootParams)
            vcpus.append(vcpu)
        }
        let vm = try VM(kvm: kvm, memory: memory, mmioBus: mmio, pioBus: pio, vcpus: vcpus)
        resetLine.vm = Unmanaged.passUnretained(vm)
        vm.consoleInput = serial
        vm.consoleSpace = consoleSpace
        vm.powerButton = CtrlAltDel(keyboard: keyboard)
        return vm
        #else
        throw .unsupported("the x86_64 machine runs on x86_64 hosts only")
        #endif
    }

    public static func deviceTreeBlob(_ config: VMConfig, system: KVMSystem) throws(SwiftletError) -> [UInt8] {
        throw .invalidArgument("--dump-dtb: the x86_64 machine has no device tree")
    }

    /// MSRs a fresh vCPU gets before Linux's entry: SYSCALL/SYSENTER cleared, fast strings,
    /// and MTRRs enabled with write-back as the default type.
    static let bootMSRs: [(index: UInt32, value: UInt64)] = [
        (0x174, 0), (0x175, 0), (0x176, 0),                      // IA32_SYSENTER_CS/ESP/EIP
        (0xC000_0081, 0), (0xC000_0082, 0), (0xC000_0083, 0),    // STAR, LSTAR, CSTAR
        (0xC000_0084, 0), (0xC000_0102, 0),                      // SYSCALL_MASK, KERNEL_GS_BASE
        (0x10, 0),                                               // IA32_TSC
        (0x1A0, 1),                                              // IA32_MISC_ENABLE: fast strings
        (0x2FF, 1 << 11 | 6),                                    // MTRRdefType: enabled, WB
    ]
}

/// The i8042's reset line: stops the VM with `.reset`.
final class MachineReset: ResetLine {
    // Unowned: the VM owns the buses that own this; a strong reference would be a cycle.
    var vm: Unmanaged<VM>?
    func reset() { vm?.takeUnretainedValue().requestStop(.reset) }
}

/// The x86 graceful-shutdown request: Ctrl-Alt-Del on the i8042 keyboard.
final class CtrlAltDel: PowerButton {
    private let keyboard: I8042
    init(keyboard: I8042) { self.keyboard = keyboard }
    func setPressed(_ pressed: Bool) { keyboard.sendCtrlAltDel(pressed: pressed) }
}

/// An ISA interrupt line of the in-kernel PIC/IOAPIC (KVM_IRQ_LINE with the GSI number).
final class GSILine: InterruptLine {
    private let vm: KVMVM
    private let gsi: UInt32
    init(vm: KVMVM, gsi: UInt32) { self.vm = vm; self.gsi = gsi }
    func setLevel(_ high: Bool) { _ = vm.setIRQLine(gsi, level: high) }
}
