#if arch(arm64)
import CLinux
import KVM
import SwiftletCore

// vGIC device attributes (arch/arm64/include/uapi/asm/kvm.h).
private let KVM_DEV_ARM_VGIC_GRP_ADDR: UInt32 = 0
private let KVM_DEV_ARM_VGIC_GRP_NR_IRQS: UInt32 = 3
private let KVM_DEV_ARM_VGIC_GRP_CTRL: UInt32 = 4
private let KVM_DEV_ARM_VGIC_CTRL_INIT: UInt64 = 0
private let KVM_VGIC_V2_ADDR_TYPE_DIST: UInt64 = 0
private let KVM_VGIC_V2_ADDR_TYPE_CPU: UInt64 = 1
private let KVM_VGIC_V3_ADDR_TYPE_DIST: UInt64 = 2
private let KVM_VGIC_V3_ADDR_TYPE_REDIST: UInt64 = 3
private let KVM_VGIC_ITS_ADDR_TYPE: UInt64 = 4

/// The in-kernel GIC: GICv3 where the host can, else GICv2 (at most 8 vCPUs); with a GICv3,
/// an ITS too where the host's KVM offers one.
final class VGIC {
    let device: KVMDevice
    let version: GICVersion
    /// The ITS, created by `finalize`; its fd lives as long as this object, which the
    /// machine's devices retain.
    private(set) var its: KVMDevice?

    /// What the guest's device tree describes.
    var model: GICModel { GICModel(version: version, its: its != nil) }

    /// Creates the GIC and places its frames. Call after the vCPUs exist, then `finalize`.
    init(vm: KVMVM, cpus: Int) throws(SwiftletError) {
        if let v3 = try vm.createDevice(type: UInt32(KVM_DEV_TYPE_ARM_VGIC_V3.rawValue)) {
            device = v3
            version = .v3
            try VGIC.setAddress(v3, KVM_VGIC_V3_ADDR_TYPE_DIST, Layout.gicDistributor)
            try VGIC.setAddress(v3, KVM_VGIC_V3_ADDR_TYPE_REDIST, Layout.gicRedistributors)
        } else if let v2 = try vm.createDevice(type: UInt32(KVM_DEV_TYPE_ARM_VGIC_V2.rawValue)) {
            guard cpus <= Layout.maxVCPUsGICv2 else {
                throw .unsupported("this host's KVM offers only GICv2, which addresses at most \(Layout.maxVCPUsGICv2) vCPUs (asked for \(cpus))")
            }
            device = v2
            version = .v2
            try VGIC.setAddress(v2, KVM_VGIC_V2_ADDR_TYPE_DIST, Layout.gicDistributor)
            try VGIC.setAddress(v2, KVM_VGIC_V2_ADDR_TYPE_CPU, Layout.gicV2CPUInterface)
        } else {
            throw .unsupported("this host's KVM can create neither a GICv3 nor a GICv2 (KVM_CREATE_DEVICE)")
        }
    }

    /// Which GIC `init` would create, without creating one.
    static func probe(vm: KVMVM, cpus: Int) throws(SwiftletError) -> GICModel {
        if try vm.canCreateDevice(type: UInt32(KVM_DEV_TYPE_ARM_VGIC_V3.rawValue)) {
            return GICModel(version: .v3, its: try vm.canCreateDevice(type: UInt32(KVM_DEV_TYPE_ARM_VGIC_ITS.rawValue)))
        }
        if try vm.canCreateDevice(type: UInt32(KVM_DEV_TYPE_ARM_VGIC_V2.rawValue)) {
            guard cpus <= Layout.maxVCPUsGICv2 else {
                throw .unsupported("this host's KVM offers only GICv2, which addresses at most \(Layout.maxVCPUsGICv2) vCPUs (asked for \(cpus))")
            }
            return GICModel(version: .v2, its: false)
        }
        throw .unsupported("this host's KVM can create neither a GICv3 nor a GICv2 (KVM_CREATE_DEVICE)")
    }

    private static func setAddress(_ device: KVMDevice, _ type: UInt64, _ address: UInt64) throws(SwiftletError) {
        var value = address
        try device.setAttribute(group: KVM_DEV_ARM_VGIC_GRP_ADDR, attribute: type, value: &value)
    }

    /// Sets the IRQ count and initialises the GIC; every vCPU must exist by now. Then, with a
    /// GICv3, adds the ITS if KVM offers one (arm-vgic-its.rst: base address, then
    /// CTRL_INIT; KVM accepts an ITS created after the GIC's own initialisation and sets up
    /// its LPI state then). Without an ITS the guest runs as before, with no LPIs.
    /// No MSI routing is set up: Swiftlet's devices (virtio-mmio) raise wired SPIs through
    /// irqfds; MSIs through the ITS (KVM_SIGNAL_MSI or MSI routes with a device ID, which KVM
    /// requires once an ITS exists: KVM_CAP_MSI_DEVID) are for an MSI-capable transport.
    func finalize(vm: KVMVM) throws(SwiftletError) {
        var count = Layout.gicIRQCount
        try device.setAttribute(group: KVM_DEV_ARM_VGIC_GRP_NR_IRQS, attribute: 0, value: &count)
        try device.setAttribute(group: KVM_DEV_ARM_VGIC_GRP_CTRL, attribute: KVM_DEV_ARM_VGIC_CTRL_INIT, value: nil)
        guard version == .v3, let its = try vm.createDevice(type: UInt32(KVM_DEV_TYPE_ARM_VGIC_ITS.rawValue)) else { return }
        try VGIC.setAddress(its, KVM_VGIC_ITS_ADDR_TYPE, Layout.gicITS)
        try its.setAttribute(group: KVM_DEV_ARM_VGIC_GRP_CTRL, attribute: KVM_DEV_ARM_VGIC_CTRL_INIT, value: nil)
        self.its = its
    }
}
#endif
