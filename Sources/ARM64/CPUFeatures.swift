import KVM
import SwiftletCore

/// The opt-in arm64 vCPU features (--pmu, --sve, --pauth): each needs KVM's capability,
/// checked up front so a missing one is one clear error before any vCPU exists.
enum CPUFeatures {
    // KVM_ARM_VCPU_* feature bits (arch/arm64/include/uapi/asm/kvm.h).
    static let pmuV3: UInt32 = 3
    static let sve: UInt32 = 4
    static let ptrauthAddress: UInt32 = 5
    static let ptrauthGeneric: UInt32 = 6
    // KVM_CAP_* numbers (include/uapi/linux/kvm.h).
    static let capPMUV3: Int32 = 126
    static let capSVE: Int32 = 170
    static let capPtrauthAddress: Int32 = 171
    static let capPtrauthGeneric: Int32 = 172
    // vCPU attributes for the PMU: group KVM_ARM_VCPU_PMU_V3_CTRL, attributes IRQ and INIT.
    static let pmuControlGroup: UInt32 = 0
    static let pmuIRQAttribute: UInt64 = 0
    static let pmuInitAttribute: UInt64 = 1
    /// PPI 7 (INTID 23), as on QEMU virt; the device tree's pmu node says the same.
    static let pmuInterrupt: UInt32 = 23

    /// The feature bits `config` asks for; throws when KVM (per `check`) lacks one.
    static func requested(_ config: VMConfig, check: (Int32) -> Int32) throws(SwiftletError) -> [UInt32] {
        var features: [UInt32] = []
        if config.pmu {
            guard check(capPMUV3) > 0 else { throw .unsupported("--pmu: this host's KVM has no PMUv3 for guests (KVM_CAP_ARM_PMU_V3)") }
            features.append(pmuV3)
        }
        if config.sve {
            guard check(capSVE) > 0 else { throw .unsupported("--sve: this host's KVM has no SVE for guests (KVM_CAP_ARM_SVE)") }
            features.append(sve)
        }
        if config.pointerAuthentication {
            guard check(capPtrauthAddress) > 0, check(capPtrauthGeneric) > 0 else {
                throw .unsupported("--pauth: this host's KVM has no pointer authentication for guests (KVM_CAP_ARM_PTRAUTH_ADDRESS/GENERIC)")
            }
            features += [ptrauthAddress, ptrauthGeneric]
        }
        return features
    }

    #if arch(arm64)
    static func initializePMU(_ vcpu: KVMVCPU) throws(SwiftletError) {
        var irq = pmuInterrupt
        try vcpu.setAttribute(group: pmuControlGroup, attribute: pmuIRQAttribute, value: &irq)
        try vcpu.setAttribute(group: pmuControlGroup, attribute: pmuInitAttribute, value: nil)
    }
    #endif
}
