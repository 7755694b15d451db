import KVM
import SwiftletCore

/// What each architecture provides: from a config, a VM with its memory map, devices,
/// boot image loaded and vCPUs set up to enter the kernel.
public protocol Machine {
    static var name: String { get }
    static func build(_ config: VMConfig, system: KVMSystem, console: any ConsoleSink) throws(SwiftletError) -> VM
    /// The device tree the guest would get (`--dump-dtb`); machines without one throw.
    static func deviceTreeBlob(_ config: VMConfig, system: KVMSystem) throws(SwiftletError) -> [UInt8]
}
