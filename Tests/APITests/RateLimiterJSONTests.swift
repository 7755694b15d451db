import XCTest
@testable import API
import SwiftletCore

final class RateLimiterJSONTests: XCTestCase {
    private func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> RateLimiterConfig? {
        try RateLimiterJSON.parse(try JSONValue.parse(text))
    }

    /// The 400 a body gets; a body that parses fails the test.
    private func fault(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let value = try JSONValue.parse(text)
        do {
            let config = try RateLimiterJSON.parse(value)
            XCTFail("\(text) parsed as \(String(describing: config))", file: file, line: line)
            return ""
        } catch {
            XCTAssertEqual(error.status, 400, file: file, line: line)
            return error.message
        }
    }

    func testFullObject() throws {
        let config = try parse("""
            {"bandwidth": {"size": 10485760, "one_time_burst": 1048576, "refill_time": 1000},
             "ops": {"size": 500, "refill_time": 100}}
            """)
        XCTAssertEqual(config, RateLimiterConfig(
            bandwidth: TokenBucketConfig(size: 10_485_760, oneTimeBurst: 1_048_576, refillTimeMs: 1000),
            ops: TokenBucketConfig(size: 500, oneTimeBurst: 0, refillTimeMs: 100)))
    }

    func testNullsAndAbsentMembers() throws {
        XCTAssertNil(try parse("null"))
        XCTAssertEqual(try parse("{}"), RateLimiterConfig())
        XCTAssertEqual(try parse(#"{"bandwidth": null, "ops": null}"#), RateLimiterConfig())
        XCTAssertEqual(try parse(#"{"ops": {"size": 5, "one_time_burst": null, "refill_time": 7}}"#),
                       RateLimiterConfig(ops: TokenBucketConfig(size: 5, refillTimeMs: 7)))
        XCTAssertEqual(try parse(#"{"bandwidth": {"size": 0, "refill_time": 0}}"#),
                       RateLimiterConfig(bandwidth: TokenBucketConfig(size: 0, refillTimeMs: 0)),
                       "a zero bucket is kept (a PATCH that removes the limit), and limits nothing")
        XCTAssertEqual(try parse(#"{"bandwidth": {"size": 9223372036854775807, "refill_time": 9223372036854775807}}"#)?
                        .bandwidth?.size, UInt64(Int64.max))
    }

    func testBadBodiesAnswer400WithAClearMessage() throws {
        let cases: [(String, String)] = [
            ("5", "rate_limiter must be an object or null, got an integer"),
            (#""fast""#, "rate_limiter must be an object or null, got a string"),
            ("[]", "rate_limiter must be an object or null, got an array"),
            (#"{"bandwith": null}"#, #"unknown field "bandwith" in rate_limiter"#),
            (#"{"bandwidth": 5}"#, "rate_limiter.bandwidth must be an object or null, got an integer"),
            (#"{"ops": []}"#, "rate_limiter.ops must be an object or null, got an array"),
            (#"{"ops": {"size": 1, "refill_time": 1, "rate": 2}}"#, #"unknown field "rate" in rate_limiter.ops"#),
            (#"{"ops": {"size": "1", "refill_time": 1}}"#, "rate_limiter.ops.size must be a non-negative integer, got a string"),
            (#"{"ops": {"size": 1, "refill_time": true}}"#, "rate_limiter.ops.refill_time must be a non-negative integer, got a boolean"),
            (#"{"ops": {"size": null, "refill_time": 1}}"#, "rate_limiter.ops.size must be a non-negative integer, got null"),
            (#"{"bandwidth": {"size": -1, "refill_time": 1}}"#, "rate_limiter.bandwidth.size must not be negative, got -1"),
            (#"{"bandwidth": {"size": 1, "one_time_burst": -5, "refill_time": 1}}"#,
             "rate_limiter.bandwidth.one_time_burst must not be negative, got -5"),
            (#"{"bandwidth": {"size": 1, "one_time_burst": "lots", "refill_time": 1}}"#,
             "rate_limiter.bandwidth.one_time_burst must be a non-negative integer, got a string"),
            (#"{"bandwidth": {"size": 1, "refill_time": -9223372036854775808}}"#,
             "rate_limiter.bandwidth.refill_time must not be negative, got -9223372036854775808"),
            (#"{"bandwidth": {"refill_time": 1}}"#, #"missing required field "size" in rate_limiter.bandwidth"#),
            (#"{"ops": {"size": 1}}"#, #"missing required field "refill_time" in rate_limiter.ops"#),
            (#"{"ops": {}}"#, #"missing required field "size" in rate_limiter.ops"#),
        ]
        for (body, expected) in cases {
            XCTAssertEqual(try fault(body), expected, body)
        }
    }

    func testFieldNameIsTheCallers() throws {
        XCTAssertThrowsError(try RateLimiterJSON.parse(.integer(1), field: "rx_rate_limiter")) { error in
            XCTAssertEqual((error as? APIError)?.message, "rx_rate_limiter must be an object or null, got an integer")
        }
    }

    func testSerializesAsFirecrackerDoes() throws {
        XCTAssertEqual(RateLimiterJSON.json(nil), .null)
        XCTAssertEqual(RateLimiterJSON.json(RateLimiterConfig()), .null)
        XCTAssertEqual(RateLimiterJSON.json(RateLimiterConfig(ops: TokenBucketConfig(size: 0, refillTimeMs: 5))), .null,
                       "a bucket that limits nothing does not run")
        let config = RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1000, oneTimeBurst: 0, refillTimeMs: 100),
                                       ops: TokenBucketConfig(size: 10, oneTimeBurst: 3, refillTimeMs: 1000))
        XCTAssertEqual(RateLimiterJSON.json(config).serialized(),
                       #"{"bandwidth":{"size":1000,"one_time_burst":null,"refill_time":100},"#
                       + #""ops":{"size":10,"one_time_burst":3,"refill_time":1000}}"#)
        XCTAssertEqual(RateLimiterJSON.json(RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 1))).serialized(),
                       #"{"bandwidth":null,"ops":{"size":1,"one_time_burst":null,"refill_time":1}}"#)
        XCTAssertEqual(try RateLimiterJSON.parse(RateLimiterJSON.json(config)), config, "what GET shows, PUT takes")
        let huge = RateLimiterConfig(bandwidth: TokenBucketConfig(size: .max, oneTimeBurst: .max, refillTimeMs: .max))
        XCTAssertEqual(RateLimiterJSON.json(huge)["bandwidth"]?["size"], .integer(.max), "clamped to what JSON carries here")
    }
}
