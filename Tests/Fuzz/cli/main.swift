import FuzzKit
import SwiftletCore

// RunOptions.parse (`swiftlet run` flags, and the whole command line of the binary run as
// `firecracker`) on argument lists split from the input; a configuration it returns must
// pass VMConfig.validate and say where the VM comes from.
//
// Input: the arguments separated by NUL bytes, e.g. "--kernel\0Image\0--memory=1G".

runFuzzer { buffer in
    let arguments = Array(buffer).split(separator: 0, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    for dialect in [CommandLineDialect.swiftlet, .firecracker] {
        do throws(SwiftletError) {
            switch try RunOptions.parse(arguments, dialect: dialect) {
            case .help, .version: break
            case .run(let config):
                require(config.kernelPath != nil || config.apiSocketPath != nil || config.configFilePath != nil,
                        "parsed without a kernel, an API socket or a config file")
                require(dialect == .swiftlet || config.kernelPath == nil, "a firecracker command line gave a kernel")
                require(config.apiAllow.isEmpty || config.apiSocketPath != nil, "--api-allow accepted without an API socket")
                require(config.auditLogPath.map { !$0.isEmpty } ?? true, "an empty --audit-log accepted")
                if let id = config.instanceID {
                    do { try VMConfig.validateInstanceID(id) } catch { fatalError("invalid --id accepted: \(id)") }
                }
                do { try config.validate() } catch { fatalError("parsed config fails validation: \(error)") }
                _ = config.memoryBytes
            }
        } catch {
            require(error.isBadInput, "bad command line is not reported as bad input: \(error)")
            _ = error.description
        }
    }
    // The --memory parser on its own, with the whole input as the value.
    if let whole = arguments.first { _ = try? RunOptions.parseMiB(whole) }
}
