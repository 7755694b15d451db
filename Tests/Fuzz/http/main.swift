import API
import FuzzKit

// HTTPRequestParser and HTTPResponseParser fed the same byte stream in fuzzer-chosen
// chunks, calling next() after every chunk until it says needMore (or fails). Parsed
// messages must survive a round trip through the matching serializer.
//
// Input: byte 0: bits 0-2 = number of chunk sizes - 1, bit 7 = call the response parser's
// finish() at the end; then that many chunk-size bytes (0 = all that is left), used in
// turn; the rest is the stream. Seeds are HTTP messages behind a 2-byte prefix.

/// One request parsed from the client serializer's bytes.
func reparse(_ request: HTTPRequest) -> HTTPRequest? {
    var parser = HTTPRequestParser()
    parser.feed(HTTPRequest.serializeClientRequest(method: request.method, target: request.target, body: request.body))
    if case .request(let again) = parser.next() { return again }
    return nil
}

func reparse(_ response: HTTPResponse) -> HTTPResponse? {
    var parser = HTTPResponseParser()
    parser.feed(response.serialize(keepAlive: false))
    parser.finish()
    if case .response(let again) = parser.next() { return again }
    return nil
}

func checkRequest(_ request: HTTPRequest) {
    let again = reparse(request)
    require(again != nil, "serialized request did not parse again: \(request.method) \(request.target)")
    if let again {
        require(again.method == request.method && again.target == request.target && again.body == request.body
                    && again.path == request.path && again.query == request.query,
                "request changed in a round trip: \(request.method) \(request.target) -> \(again.method) \(again.target)")
    }
}

func checkResponse(_ response: HTTPResponse) {
    require(response.status >= 200 && response.status <= 999, "response parser returned status \(response.status)")
    let again = reparse(response)
    require(again != nil, "serialized response \(response.status) did not parse again")
    if let again {
        let bodyKept = response.status == 204 || response.status == 304 ? again.body.isEmpty : again.body == response.body
        require(again.status == response.status && bodyKept, "response \(response.status) changed in a round trip")
    }
}

runFuzzer { buffer in
    var input = FuzzInput(buffer)
    let mode = input.byte()
    var sizes: [Int] = []
    for _ in 0...(mode & 0x07) { sizes.append(Int(input.byte())) }
    let stream = input.rest()
    var chunks: [ArraySlice<UInt8>] = []
    var position = 0, turn = 0
    while position < stream.count {
        let size = sizes[turn % sizes.count] == 0 ? stream.count - position : sizes[turn % sizes.count]
        let end = min(stream.count, position + size)
        chunks.append(stream[position..<end])
        position = end
        turn += 1
    }

    var requests = HTTPRequestParser()
    var failure: APIError?
    requestLoop: for chunk in chunks {
        requests.feed(Array(chunk))
        while true {
            let result = requests.next()
            switch result {
            case .needMore: continue requestLoop
            case .sendContinue: continue
            case .request(let request): checkRequest(request)
            case .error(let error):
                require(error.status >= 400 && error.status < 500, "request parser failed with status \(error.status)")
                _ = error.response().serialize(keepAlive: false)
                failure = error
                break requestLoop
            }
        }
    }
    if let failure { require(requests.next() == .error(failure), "the request parser forgot its error") }
    require(requests.bufferedByteCount >= 0, "negative buffered byte count")

    var responses = HTTPResponseParser()
    var finished = false
    responseLoop: while true {
        if let chunk = chunks.first {
            chunks.removeFirst()
            responses.feed(Array(chunk))
        } else if mode & 0x80 != 0 && !finished {
            responses.finish()
            finished = true
        } else {
            break
        }
        while true {
            switch responses.next() {
            case .needMore: continue responseLoop
            case .response(let response): checkResponse(response)
            case .error: break responseLoop
            }
        }
    }
}
