#if arch(arm64)
import CLinux
import SwiftletCore

extension KVMVM {
    /// KVM_ARM_PREFERRED_TARGET: the CPU type KVM will emulate best on this host.
    public func preferredTarget() throws(SwiftletError) -> kvm_vcpu_init {
        var target = kvm_vcpu_init()
        guard sl_ioctl(fd, SL_KVM_ARM_PREFERRED_TARGET, &target) == 0 else {
            throw .lastSystemError("KVM_ARM_PREFERRED_TARGET")
        }
        return target
    }
}

extension KVMVCPU {
    /// KVM_ARM_VCPU_INIT with the given feature bits (KVM_ARM_VCPU_* numbers).
    public func initialize(target: kvm_vcpu_init, features: [UInt32]) throws(SwiftletError) {
        var init_ = target
        withUnsafeMutableBytes(of: &init_.features) { words in
            let features32 = words.bindMemory(to: UInt32.self)
            for index in 0..<features32.count { features32[index] = 0 }
            for feature in features { features32[Int(feature / 32)] |= 1 << (feature % 32) }
        }
        guard sl_ioctl(fd, SL_KVM_ARM_VCPU_INIT, &init_) == 0 else {
            throw .lastSystemError("KVM_ARM_VCPU_INIT on vCPU \(id)")
        }
    }

    public func finalize(feature: Int32) throws(SwiftletError) {
        var value = feature
        guard sl_ioctl(fd, SL_KVM_ARM_VCPU_FINALIZE, &value) == 0 else {
            throw .lastSystemError("KVM_ARM_VCPU_FINALIZE")
        }
    }

    /// KVM_SET_DEVICE_ATTR on the vCPU (e.g. the PMU's interrupt and init).
    public func setAttribute(group: UInt32, attribute: UInt64, value: UnsafeMutableRawPointer?) throws(SwiftletError) {
        var attr = kvm_device_attr(flags: 0, group: group, attr: attribute, addr: UInt64(UInt(bitPattern: value)))
        guard sl_ioctl(fd, SL_KVM_SET_DEVICE_ATTR, &attr) == 0 else {
            throw .lastSystemError("KVM_SET_DEVICE_ATTR on vCPU \(id) group \(group) attr \(attribute)")
        }
    }

    public func setOneReg(_ id: UInt64, _ value: UInt64) throws(SwiftletError) {
        var value = value
        try withUnsafeMutablePointer(to: &value) { (pointer) throws(SwiftletError) in
            var reg = kvm_one_reg(id: id, addr: UInt64(UInt(bitPattern: pointer)))
            guard sl_ioctl(fd, SL_KVM_SET_ONE_REG, &reg) == 0 else {
                throw .lastSystemError("KVM_SET_ONE_REG 0x\(hex(id))")
            }
        }
    }

    public func getOneReg(_ id: UInt64) throws(SwiftletError) -> UInt64 {
        var value: UInt64 = 0
        try withUnsafeMutablePointer(to: &value) { (pointer) throws(SwiftletError) in
            var reg = kvm_one_reg(id: id, addr: UInt64(UInt(bitPattern: pointer)))
            guard sl_ioctl(fd, SL_KVM_GET_ONE_REG, &reg) == 0 else {
                throw .lastSystemError("KVM_GET_ONE_REG 0x\(hex(id))")
            }
        }
        return value
    }
}
#endif
