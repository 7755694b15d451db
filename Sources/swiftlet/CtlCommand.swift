import API
import SwiftletCore

/// `swiftlet ctl`: one request to a running swiftlet's API socket, so the static edge
/// binary can drive a VM without curl. Prints the response body; non-zero on HTTP errors.
enum CtlCommand {
    static let usage = """
    Usage: swiftlet ctl --api-socket PATH METHOD URI [JSON]

    Send one request to the control API of a running swiftlet and print the response body.
    Exits 0 for 2xx answers, 1 for HTTP errors (the fault message goes to stderr), 2 for bad usage.

    Examples:
      swiftlet ctl --api-socket /tmp/vm.sock PUT /boot-source '{"kernel_image_path": "Image"}'
      swiftlet ctl --api-socket /tmp/vm.sock PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 512}'
      swiftlet ctl --api-socket /tmp/vm.sock PUT /actions '{"action_type": "InstanceStart"}'
      swiftlet ctl --api-socket /tmp/vm.sock PATCH /vm '{"state": "Paused"}'
      swiftlet ctl --api-socket /tmp/vm.sock GET /
      swiftlet ctl --api-socket /tmp/vm.sock PUT /actions '{"action_type": "SendCtrlAltDel"}'

    Options:
      --api-socket PATH  the socket given to swiftlet run --api-socket
      -h, --help         show this help
    """

    static func main(_ arguments: [String]) -> Int32 {
        var socket: String?
        var positional: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "-h", "--help":
                print(usage)
                return 0
            case "--api-socket":
                index += 1
                guard index < arguments.count else { return usageError("--api-socket needs a value") }
                socket = arguments[index]
            default:
                if argument.hasPrefix("--api-socket=") {
                    socket = String(argument.dropFirst("--api-socket=".count))
                } else if argument.hasPrefix("-") && argument.count > 1 {
                    return usageError("unknown option \(argument)")
                } else {
                    positional.append(argument)
                }
            }
            index += 1
        }
        guard let socket else { return usageError("--api-socket PATH is required") }
        guard positional.count == 2 || positional.count == 3 else { return usageError("expected METHOD URI [JSON]") }
        let method = positional[0]
        guard ["GET", "PUT", "PATCH"].contains(method) else { return usageError("METHOD must be GET, PUT or PATCH, got '\(method)'") }
        let target = positional[1]
        guard target.hasPrefix("/") else { return usageError("URI must start with /, got '\(target)'") }
        let body = positional.count == 3 ? Array(positional[2].utf8) : nil
        do {
            let response = try APIClient.send(socketPath: socket, method: method, target: target, body: body)
            if response.status >= 200 && response.status < 300 {
                if !response.body.isEmpty { print(response.bodyText) }
                return 0
            }
            printError("swiftlet ctl: \(response.status) \(HTTPResponse.reasonPhrase(response.status)): \(faultMessage(response))")
            return 1
        } catch {
            printError("swiftlet ctl: \(error)")
            return 1
        }
    }

    static func faultMessage(_ response: HTTPResponse) -> String {
        if let json = try? JSONValue.parse(response.body), case .string(let message)? = json["fault_message"] {
            return message
        }
        return response.bodyText
    }

    static func usageError(_ message: String) -> Int32 {
        printError("swiftlet ctl: \(message) (see swiftlet ctl --help)")
        return 2
    }
}
