import FuzzKit
import SwiftletCore

// RunOptions.parse (`swiftlet run` flags) on argument lists split from the input; a
// configuration it returns must pass VMConfig.validate.
//
// Input: the arguments separated by NUL bytes, e.g. "--kernel\0Image\0--memory=1G".

runFuzzer { buffer in
    let arguments = Array(buffer).split(separator: 0, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    do throws(SwiftletError) {
        switch try RunOptions.parse(arguments) {
        case .help: break
        case .run(let config):
            require(config.kernelPath != nil || config.apiSocketPath != nil, "parsed without --kernel or --api-socket")
            do { try config.validate() } catch { fatalError("parsed config fails validation: \(error)") }
            _ = config.memoryBytes
        }
    } catch {
        require(error.isBadInput, "bad command line is not reported as bad input: \(error)")
        _ = error.description
    }
    // The --memory parser on its own, with the whole input as the value.
    if let whole = arguments.first { _ = try? RunOptions.parseMiB(whole) }
}
