import API
import FuzzKit
import SwiftletCore

// ConfigFile.apply (Firecracker's --config-file) on the whole input as the file's bytes,
// onto swiftlet run's defaults and onto the `firecracker` command line's (a --metrics-path
// and a --log-path given too). A configuration it accepts must pass VMConfig.validate and
// have a kernel, and GET /vm/config must serialize it to JSON the API parses back; a
// refusal must be bad input (exit 2) in one line.

func check(_ bytes: [UInt8], onto base: VMConfig) {
    var config = base
    do throws(SwiftletError) {
        try ConfigFile.apply(bytes, to: &config)
        require(!(config.kernelPath ?? "").isEmpty, "accepted without a kernel")
        do { try config.validate() } catch { fatalError("accepted configuration fails validation: \(error)") }
        require(config.metrics == base.metrics || base.metrics == nil, "the command line's metrics were replaced")
        let json = APIRouter.vmConfig(config).serializedBytes()
        do { _ = try JSONParser.parse(json, maxBytes: json.count) } catch { fatalError("GET /vm/config is not JSON: \(error)") }
        _ = APIRouter.machineConfig(config).serializedBytes()
    } catch {
        require(error.isBadInput, "a bad config file is not reported as bad input: \(error)")
        require(!error.description.utf8.contains(0x0A), "the refusal is more than one line: \(error)")
    }
}

var firecracker = VMConfig()
firecracker.memoryMiB = FirecrackerDefaults.memoryMiB
firecracker.metrics = MetricsConfig(path: "/metrics.fifo")
firecracker.logger = LoggerConfig(logPath: "/log.fifo", showLevel: true)

runFuzzer { buffer in
    let bytes = Array(buffer)
    check(bytes, onto: VMConfig())
    check(bytes, onto: firecracker)
}
