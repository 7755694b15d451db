import API
import FuzzKit

// JSONValue.parse on arbitrary bytes; whatever parses must serialize to JSON that parses
// back to the same value, and serialize to the same text again.
//
// Input: the JSON text itself.

runFuzzer { buffer in
    let bytes = Array(buffer)
    guard let value = try? JSONValue.parse(bytes) else { return }
    let text = value.serializedBytes()
    let again: JSONValue
    do {
        again = try JSONValue.parse(text)
    } catch {
        fatalError("serialized JSON did not parse again: \(error): \(value.serialized())")
    }
    require(again == value, "JSON value changed in a round trip: \(value.serialized()) -> \(again.serialized())")
    require(again.serializedBytes() == text, "serializing the same value twice differs: \(value.serialized())")
    _ = value.typeName
    _ = value.description
    // The String entry point takes the same bytes (after UTF-8 repair).
    _ = try? JSONValue.parse(String(decoding: bytes, as: UTF8.self))
}
