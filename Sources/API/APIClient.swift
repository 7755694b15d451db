import CLinux
import SwiftletCore

/// One request to a Swiftlet (or Firecracker) API socket; what `swiftlet ctl` uses.
public enum APIClient {
    public static let timeoutMs: Int32 = 30_000

    public static func send(socketPath: String, method: String, target: String, body: [UInt8]?) throws(SwiftletError) -> HTTPResponse {
        let fd = try UnixSocket.connect(path: socketPath)
        defer { close(fd) }
        let request = HTTPRequest.serializeClientRequest(method: method, target: target, body: body, keepAlive: false)
        var offset = 0
        while offset < request.count {
            let n = request.withUnsafeBytes { CLinux.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if sl_errno() == EINTR { continue }
                throw .lastSystemError("send to \(socketPath)")
            }
            offset += n
        }
        var parser = HTTPResponseParser()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            switch parser.next() {
            case .response(let response): return response
            case .error(let error): throw error
            case .needMore: break
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, timeoutMs)
            if ready < 0 && sl_errno() == EINTR { continue }
            guard ready > 0 else { throw .invalidArgument("no response from \(socketPath) within \(timeoutMs / 1000) s") }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if sl_errno() == EINTR { continue }
                throw .lastSystemError("recv from \(socketPath)")
            }
            if n == 0 { parser.finish() } else { buffer.withUnsafeBytes { parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
        }
    }
}
