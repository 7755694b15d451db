import CLinux
import Devices
import KVM
import SwiftletCore
import VMM

/// The x86_64 PC-like machine: RAM from 0 (split around the 32-bit MMIO hole), in-kernel
/// irqchip and PIT, COM1 16550 on IRQ 4, i8042 (keyboard, reset), CMOS RTC, an MP table,
/// and ACPI tables that describe the virtio-mmio devices (how Linux without
/// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, Debian's for one, finds them).
public enum X86Machine: Machine {
    public static let name = "x86_64"

    /// virtio-mmio windows of 4 KiB from 0xD000_0000, on IOAPIC pins 5–23 but the RTC's.
    public static let virtioSlots = VirtioSlots(base: Layout.virtioMMIO, stride: Layout.virtioMMIOStride, irqs: Layout.virtioGSIs)

    public static func addFixedDevices(to devices: inout DeviceManager, config: VMConfig) throws(SwiftletError) {
        try devices.addFixed(.serial16550, .pio, base: Layout.serialCOM1, size: Serial16550.size, irq: Layout.serialCOM1IRQ)
        try devices.addFixed(.i8042, .pio, base: I8042.base, size: I8042.size, irq: Layout.keyboardIRQ)
        try devices.addFixed(.cmos, .pio, base: CMOS.base, size: CMOS.size, irq: Layout.cmosIRQ)
        try devices.addFixed(.acpiSleepControl, .pio, base: Layout.acpiSleepControl, size: ACPISleepControl.size, irq: nil)
        if config.bootTimer { try devices.addFixed(.bootTimer, .mmio, base: Layout.bootTimer, size: BootTimer.size, irq: nil) }
    }

    /// RAM from 0 up to the MMIO hole, the remainder from 4 GiB.
    public static func ramRegions(_ config: VMConfig) -> [GuestMemory.Region] { ramRegions(memoryBytes: config.memoryBytes) }

    /// RAM from 0 up to the 32-bit MMIO hole, the rest from 4 GiB.
    public static func ramRegions(memoryBytes bytes: UInt64) -> [GuestMemory.Region] {
        if bytes <= Layout.mmioHoleStart { return [.init(guestBase: 0, size: bytes)] }
        return [.init(guestBase: 0, size: Layout.mmioHoleStart),
                .init(guestBase: Layout.highRAMStart, size: bytes - Layout.mmioHoleStart)]
    }

    public struct BootPlan {
        let layout: X86BootPlan
        let kernel: ImageFile
        let initrd: ImageFile?
    }

    public static func plan(_ config: VMConfig, devices: DeviceManager) throws(SwiftletError) -> BootPlan {
        guard config.cpus <= 254 else { throw .invalidArgument("--cpus \(config.cpus): the x86_64 machine has at most 254 vCPUs (8-bit APIC ids)") }
        let (kernel, initrd) = try config.openBootImages()
        let lowEnd = ramRegions(config)[0].size
        let cmdline = config.bootArguments(default: X86BootPlan.defaultCmdline)
        let layout = try X86BootPlan.make(kernel: try kernel.header(), initrdSize: initrd?.size, cmdline: cmdline,
                                          deviceArguments: X86BootPlan.machineArguments(cmdline: cmdline, devices: devices.virtioCommandLine),
                                          lowRAMEnd: lowEnd)
        return BootPlan(layout: layout, kernel: kernel, initrd: initrd)
    }

    public static func prepare(_ kvm: KVMVM) throws(SwiftletError) {
        #if arch(x86_64)
        try kvm.setTSSAddress(Layout.tss)
        try kvm.createIRQChipAndPIT()
        #else
        throw .unsupported("the x86_64 machine runs on x86_64 hosts only")
        #endif
    }

    public static func createVCPUs(_ kvm: KVMVM, config: VMConfig, system: KVMSystem) throws(SwiftletError) -> [KVMVCPU] {
        #if arch(x86_64)
        let supported = try system.supportedCPUID()
        var vcpus: [KVMVCPU] = []
        for id in 0..<config.cpus {
            let vcpu = try kvm.createVCPU(id: id)
            try vcpu.setCPUID(CPUID.forVCPU(supported, index: id, count: config.cpus))
            try vcpu.setMSRs(bootMSRs)
            try vcpu.setLocalInterruptPins()
            vcpus.append(vcpu)
        }
        return vcpus
        #else
        throw .unsupported("the x86_64 machine runs on x86_64 hosts only")
        #endif
    }

    /// The in-kernel irqchip exists since `prepare`.
    public static func createInterruptController(_ kvm: KVMVM, vcpus: [KVMVCPU], config: VMConfig,
                                                 devices: MachineDevices) throws(SwiftletError) {}

    public static func interruptLine(_ kvm: KVMVM, irq: UInt32) -> any InterruptLine { GSILine(vm: kvm, gsi: irq) }

    public static func attachFixed(_ record: DeviceRecord, to devices: MachineDevices) throws(SwiftletError) {
        switch record.kind {
        case .serial16550:
            let space = try EventNotifier()
            let serial = Serial16550(output: devices.console, irq: interruptLine(devices.kvm, irq: record.irq ?? 0), spaceNotifier: space)
            try devices.insert(serial, at: record)
            devices.consoleInput = serial
            devices.consoleSpace = space
        case .i8042:
            let keyboard = I8042(resetLine: MachineStopLines(devices.control), irq: interruptLine(devices.kvm, irq: record.irq ?? 0))
            try devices.insert(keyboard, at: record)
            devices.powerButton = CtrlAltDel(keyboard: keyboard)
        case .cmos:
            try devices.insert(CMOS(now: wallClockSeconds), at: record)
        case .acpiSleepControl:
            try devices.insert(ACPISleepControl(powerOff: MachineStopLines(devices.control)), at: record)
        default:
            throw .invalidArgument("the x86_64 machine has no \(record.kind) device")
        }
    }

    public static func boot(_ plan: BootPlan, vcpus: [KVMVCPU], memory: GuestMemory, devices: DeviceManager,
                            interruptController: Void, config: VMConfig) throws(SwiftletError) {
        #if arch(x86_64)
        try writeBootData(plan, cpus: config.cpus, devices: devices, memory: memory)
        // Application processors wait for INIT/SIPI in the in-kernel LAPIC; only the
        // bootstrap processor's registers matter.
        for vcpu in vcpus { try LongMode.enter(vcpu, entry: plan.layout.entry, bootParams: Layout.bootParams) }
        #else
        throw .unsupported("the x86_64 machine runs on x86_64 hosts only")
        #endif
    }

    /// Writes everything the guest finds in memory at boot: kernel (its segments), page tables, command
    /// line, MP table, ACPI tables (from the device records), initrd, boot_params.
    static func writeBootData(_ plan: BootPlan, cpus: Int, devices: DeviceManager, memory: GuestMemory) throws(SwiftletError) {
        let layout = plan.layout
        for segment in layout.segments {
            try plan.kernel.copy(into: memory, at: segment.address, fileOffset: segment.fileOffset, length: segment.fileSize)
            // A vmlinux's zero-filled tail (p_memsz past p_filesz): zeroed here rather than
            // trusted to be fresh memory, so the load is the same on any RAM.
            let tail = segment.memorySize - segment.fileSize
            if tail > 0 { try memory.pointer(at: segment.address + segment.fileSize, length: tail).initializeMemory(as: UInt8.self, repeating: 0, count: Int(tail)) }
        }
        try LongMode.writeTables(memory)
        try memory.write(layout.cmdline, at: Layout.cmdline)
        try memory.write(MPTable.make(cpus: cpus, at: Layout.mpTable), at: Layout.mpTable)
        let acpi = ACPITables.make(cpus: cpus, devices: acpiDevices(devices), at: Layout.acpiTables)
        guard UInt64(acpi.bytes.count) <= ACPITables.maxSize else {
            throw .invalidArgument("the ACPI tables for \(cpus) vCPUs and \(devices.records.count) devices do not fit below 1 MiB")
        }
        try memory.write(acpi.bytes, at: Layout.acpiTables)
        if let initrd = plan.initrd, let range = layout.initrd { try initrd.copy(into: memory, at: range.lowerBound, length: initrd.size) }
        let e820 = BootParams.e820(ram: memory.mappings.map { $0.region })
        switch layout.format {
        case .bzImage:
            guard let image = layout.bzImage else { break }
            try memory.write(BootParams.make(image: image, cmdlineAddress: Layout.cmdline, initrd: layout.initrd,
                                             e820: e820, acpiRSDP: acpi.rsdp), at: Layout.bootParams)
        case .vmlinux:
            try memory.write(BootParams.make(vmlinux: layout.setupHeader, cmdlineAddress: Layout.cmdline, initrd: layout.initrd,
                                             e820: e820, acpiRSDP: acpi.rsdp), at: Layout.bootParams)
        case .raw:
            break
        }
    }

    /// The devices as ACPI describes them.
    static func acpiDevices(_ devices: DeviceManager) -> [ACPIDevice] {
        var described: [ACPIDevice] = []
        for record in devices.records {
            switch record.kind {
            case .serial16550: described.append(.serial(port: UInt16(truncatingIfNeeded: record.base), irq: record.irq ?? 0))
            case .cmos: described.append(.rtc(port: UInt16(truncatingIfNeeded: record.base), irq: record.irq ?? 0))
            case .i8042: described.append(.keyboard(dataPort: UInt16(truncatingIfNeeded: record.base), commandPort: UInt16(truncatingIfNeeded: record.base + I8042.commandPortOffset), irq: record.irq ?? 0))
            case .virtioBlock, .virtioEntropy, .virtioNet, .virtioVsock: described.append(.virtioMMIO(base: record.base, size: record.size, gsi: record.irq ?? 0))
            case .acpiSleepControl: described.append(.sleepControl(port: UInt16(truncatingIfNeeded: record.base), softOffType: ACPISleepControl.softOffType))
            case .pl011, .pl031, .pl061, .bootTimer: break
            }
        }
        return described
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

/// What the PC's devices ask of the machine: the i8042's reset line and the ACPI sleep
/// control register's soft-off stop the VM, each naming itself.
final class MachineStopLines: ResetLine, PowerOffLine {
    private let control: VMControl
    init(_ control: VMControl) { self.control = control }
    func reset() { control.requestStop(.reset(how: "i8042 reset line")) }
    func powerOff() { control.requestStop(.powerOff(how: "ACPI S5")) }
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
