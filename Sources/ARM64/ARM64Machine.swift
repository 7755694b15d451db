import SwiftletCore
import KVM
import VMM

public enum ARM64Machine: Machine {
    public static let name = "arm64"
    public static func build(_ config: VMConfig, system: KVMSystem, console: any ConsoleSink) throws(SwiftletError) -> VM {
        throw .unsupported("arm64 machine: not yet")
    }
}
