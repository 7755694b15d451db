import KVM
import SwiftletCore

/// What each architecture provides; `build` (MachineAssembly.swift) runs the steps common
/// to both in one order: devices (records), boot plan, guest memory, VM, vCPUs, interrupt
/// controller, device objects, boot data.
public protocol Machine {
    /// What `plan` decided: the opened boot images and where they go.
    associatedtype BootPlan
    /// What `createInterruptController` tells `boot` (arm64: the GIC version).
    associatedtype InterruptController

    static var name: String { get }
    /// This machine's virtio-mmio windows and interrupt lines.
    static var virtioSlots: VirtioSlots { get }
    /// Registers the machine's fixed devices (their addresses come from its memory map).
    static func addFixedDevices(to devices: inout DeviceManager, config: VMConfig) throws(SwiftletError)
    /// Checks the configuration and the boot images before KVM is touched.
    static func plan(_ config: VMConfig, devices: DeviceManager) throws(SwiftletError) -> BootPlan
    static func ramRegions(_ config: VMConfig) -> [GuestMemory.Region]
    /// VM-wide set-up before guest memory and vCPUs exist (x86: TSS, irqchip, PIT).
    static func prepare(_ kvm: KVMVM) throws(SwiftletError)
    static func createVCPUs(_ kvm: KVMVM, config: VMConfig, system: KVMSystem) throws(SwiftletError) -> [KVMVCPU]
    /// After every vCPU exists (arm64: the vGIC, which `devices` keeps alive).
    static func createInterruptController(_ kvm: KVMVM, vcpus: [KVMVCPU], config: VMConfig,
                                          devices: MachineDevices) throws(SwiftletError) -> InterruptController
    /// The level-triggered line of interrupt `irq` as the machine numbers it (DeviceRecord.irq).
    static func interruptLine(_ kvm: KVMVM, irq: UInt32) -> any InterruptLine
    /// Makes the device of one of the machine's fixed records and puts it on its bus.
    static func attachFixed(_ record: DeviceRecord, to devices: MachineDevices) throws(SwiftletError)
    /// Guest memory contents (kernel, initrd, firmware tables) and the boot vCPU's registers.
    static func boot(_ plan: BootPlan, vcpus: [KVMVCPU], memory: GuestMemory, devices: DeviceManager,
                     interruptController: InterruptController, config: VMConfig) throws(SwiftletError)
    /// The device tree the guest would get (`--dump-dtb`); machines without one throw.
    static func deviceTreeBlob(_ config: VMConfig, system: KVMSystem) throws(SwiftletError) -> [UInt8]
}

extension Machine {
    /// The device records of `config` on this machine: the fixed devices, then one
    /// virtio-mmio window per disk (in order), per network interface (in order), the vsock
    /// device and the entropy device.
    public static func devices(_ config: VMConfig) throws(SwiftletError) -> DeviceManager {
        var devices = DeviceManager(virtio: virtioSlots)
        try addFixedDevices(to: &devices, config: config)
        for index in config.disks.indices { try devices.addVirtio(.virtioBlock(disk: index)) }
        for index in config.networkInterfaces.indices { try devices.addVirtio(.virtioNet(interface: index)) }
        if config.vsock != nil { try devices.addVirtio(.virtioVsock) }
        if config.entropy { try devices.addVirtio(.virtioEntropy) }
        return devices
    }
}
