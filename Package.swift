// swift-tools-version:6.0
import PackageDescription

// One source tree, three builds: the host build (normal Swift, unit and KVM tests), and
// the Embedded Swift static-pie edge builds for aarch64 and x86_64 (ci/build-edge).
// Every product module therefore compiles in both modes.
// Tests use full Swift (Foundation, XCTest); the Swift 5 language mode keeps their
// process and pipe plumbing free of Sendable ceremony.
let testSettings: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "Swiftlet",
    products: [
        .executable(name: "swiftlet", targets: ["swiftlet"]),
    ],
    targets: [
        .target(name: "CLinux", linkerSettings: [.linkedLibrary("fdt"), .linkedLibrary("seccomp")]),
        .target(name: "SwiftletCore", dependencies: ["CLinux"]),
        .target(name: "KVM", dependencies: ["CLinux", "SwiftletCore"]),
        .target(name: "Devices", dependencies: ["CLinux", "SwiftletCore"]),
        .target(name: "VMM", dependencies: ["CLinux", "SwiftletCore", "KVM", "Devices"]),
        .target(name: "ARM64", dependencies: ["CLinux", "SwiftletCore", "KVM", "Devices", "VMM"]),
        .target(name: "X86_64", dependencies: ["CLinux", "SwiftletCore", "KVM", "Devices", "VMM"]),
        .target(name: "API", dependencies: ["SwiftletCore"]),
        .executableTarget(name: "swiftlet",
                          dependencies: ["CLinux", "SwiftletCore", "KVM", "VMM", "API", "ARM64", "X86_64"]),
        .testTarget(name: "SwiftletCoreTests", dependencies: ["SwiftletCore"], swiftSettings: testSettings),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "SwiftletCore"], swiftSettings: testSettings),
        .testTarget(name: "APITests", dependencies: ["API", "SwiftletCore"], swiftSettings: testSettings),
        .testTarget(name: "ARM64Tests", dependencies: ["ARM64", "SwiftletCore", "VMM"], swiftSettings: testSettings),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "ARM64", "X86_64", "SwiftletCore"], swiftSettings: testSettings),
        .testTarget(name: "X86_64Tests", dependencies: ["X86_64", "KVM", "SwiftletCore", "VMM"], swiftSettings: testSettings),
        .testTarget(name: "IntegrationTests",
                    dependencies: ["CLinux", "SwiftletCore", "KVM", "VMM", "X86_64"],
                    exclude: ["api_client.py", "audit_client.py", "terminal_test.py"], swiftSettings: testSettings),
    ]
)

// libFuzzer targets (ci/fuzz), declared only when SWIFTLET_FUZZ=1 so the host, test and
// edge builds never see them: Tests/Fuzz/<name>/main.swift hands each input to the code
// under test through FuzzKit. ci/fuzz builds them with -sanitize=fuzzer into .build-fuzz.
if Context.environment["SWIFTLET_FUZZ"] == "1" {
    package.targets += [
        .target(name: "CFuzzDriver", path: "Tests/Fuzz/CFuzzDriver"),
        .target(name: "FuzzKit", dependencies: ["CFuzzDriver", "SwiftletCore"], path: "Tests/Fuzz/FuzzKit", swiftSettings: testSettings),
    ]
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("devices", ["Devices", "SwiftletCore"]),
        ("virtqueue", ["Devices", "SwiftletCore"]),
        ("virtio-blk", ["Devices", "SwiftletCore"]),
        ("vsock", ["Devices", "SwiftletCore"]),
        ("virtio-net", ["Devices", "SwiftletCore"]),
        ("http", ["API"]),
        ("json", ["API"]),
        ("routes", ["API", "SwiftletCore"]),
        ("config-file", ["API", "SwiftletCore"]),
        ("cli", ["SwiftletCore"]),
        ("devicetree", ["ARM64", "CLinux", "SwiftletCore"]),
        ("arm64-image", ["ARM64", "SwiftletCore"]),
        ("bzimage", ["X86_64", "SwiftletCore"]),
        ("vmlinux", ["X86_64", "SwiftletCore"]),
    ]
    for target in fuzzTargets {
        package.targets.append(.executableTarget(
            name: "fuzz-\(target.name)", dependencies: ["FuzzKit"] + target.dependencies,
            path: "Tests/Fuzz/\(target.name)", swiftSettings: testSettings))
    }
}
