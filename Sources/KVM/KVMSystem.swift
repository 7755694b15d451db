import CLinux
import SwiftletCore

/// /dev/kvm: the API version check, capabilities, and VM creation.
public final class KVMSystem {
    public static let requiredAPIVersion: Int32 = 12
    public let fd: Int32
    public let vcpuMmapSize: Int

    public init(path: String = "/dev/kvm") throws(SwiftletError) {
        let fd = sl_open(path, O_RDWR)
        guard fd >= 0 else {
            let code = sl_errno()
            throw .unsupported("cannot open \(path): \(SwiftletError.errnoString(code)) (KVM must be enabled and \(path) readable and writable by this user)")
        }
        let version = sl_ioctl_value(fd, SL_KVM_GET_API_VERSION, 0)
        let code = sl_errno()
        do {
            try KVMSystem.checkAPIVersion(version, errno: code, path: path)
        } catch {
            close(fd)
            throw error
        }
        let size = sl_ioctl_value(fd, SL_KVM_GET_VCPU_MMAP_SIZE, 0)
        guard size > 0 else {
            let error = SwiftletError.lastSystemError("KVM_GET_VCPU_MMAP_SIZE")
            close(fd)
            throw error
        }
        self.fd = fd
        self.vcpuMmapSize = Int(size)
    }

    deinit { close(fd) }

    /// KVM_GET_API_VERSION's answer must be 12; anything else is not a KVM Swiftlet knows.
    public static func checkAPIVersion(_ version: Int32, errno code: Int32, path: String) throws(SwiftletError) {
        if version < 0 {
            throw .unsupported("\(path) is not a KVM device (KVM_GET_API_VERSION: \(SwiftletError.errnoString(code)))")
        }
        guard version == requiredAPIVersion else {
            throw .unsupported("\(path) reports KVM API version \(version); Swiftlet needs version \(requiredAPIVersion)")
        }
    }

    /// KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific value.
    public func check(_ capability: Int32) -> Int32 {
        max(0, sl_ioctl_value(fd, SL_KVM_CHECK_EXTENSION, UInt(capability)))
    }

    public func createVM(type: UInt = 0) throws(SwiftletError) -> KVMVM {
        var vmfd: Int32
        repeat { vmfd = sl_ioctl_value(fd, SL_KVM_CREATE_VM, type) } while vmfd < 0 && sl_errno() == EINTR
        guard vmfd >= 0 else { throw .lastSystemError("KVM_CREATE_VM") }
        return KVMVM(fd: vmfd, system: self)
    }
}
