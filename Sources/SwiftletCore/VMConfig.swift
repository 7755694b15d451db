/// What a VM is made of: the CLI and (later) the API fill one in; a Machine builds from it.
public struct VMConfig: Equatable {
    public var kernelPath: String?
    public var initrdPath: String?
    public var cmdline: String?
    public var cpus: Int = 1
    public var memoryMiB: UInt64 = 256
    public var dumpDTBPath: String?
    public var apiSocketPath: String?
    /// arm64 vCPU features to enable (each only where KVM reports it).
    public var pmu = false
    public var sve = false
    public var pointerAuthentication = false

    public init() {}

    public static let maxCPUs = 512
    public static let minMemoryMiB: UInt64 = 2

    public var memoryBytes: UInt64 { memoryMiB << 20 }

    /// Checks sizes and counts that do not depend on the architecture.
    public func validate() throws(SwiftletError) {
        guard cpus >= 1, cpus <= VMConfig.maxCPUs else {
            throw .invalidArgument("--cpus must be between 1 and \(VMConfig.maxCPUs), got \(cpus)")
        }
        guard memoryMiB >= VMConfig.minMemoryMiB, memoryMiB <= (1 << 20) else {
            throw .invalidArgument("--memory must be between \(VMConfig.minMemoryMiB) MiB and 1 TiB, got \(memoryMiB) MiB")
        }
    }
}
