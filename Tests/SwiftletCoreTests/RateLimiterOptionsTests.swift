import XCTest
@testable import SwiftletCore

final class RateLimiterOptionsTests: XCTestCase {
    /// Applies `key=value` pairs as a device flag's parser would, failing on a non-limiter key.
    private func parse(_ pairs: [(String, String)], prefix: String = "",
                       file: StaticString = #filePath, line: UInt = #line) throws -> RateLimiterConfig? {
        var config: RateLimiterConfig?
        for (key, value) in pairs {
            let taken = try RateLimiterOptions.apply(key: key, value: value, prefix: prefix, to: &config)
            XCTAssertTrue(taken, "\(key) not taken", file: file, line: line)
        }
        return config
    }

    private func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func testAllKeys() throws {
        let config = try parse([("bw_size", "1000"), ("bw_one_time_burst", "500"), ("bw_refill_time", "100"),
                                ("ops_size", "20"), ("ops_one_time_burst", "5"), ("ops_refill_time", "1000")])
        XCTAssertEqual(config, RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1000, oneTimeBurst: 500, refillTimeMs: 100),
                                                 ops: TokenBucketConfig(size: 20, oneTimeBurst: 5, refillTimeMs: 1000)))
        XCTAssertNoThrow(try RateLimiterOptions.validate(try XCTUnwrap(config), what: "--disk"))
    }

    func testOnlyTheBucketsGivenExist() throws {
        let config = try parse([("ops_refill_time", "10"), ("ops_size", "3")])
        XCTAssertEqual(config, RateLimiterConfig(ops: TokenBucketConfig(size: 3, refillTimeMs: 10)))
        XCTAssertNil(config?.bandwidth)
    }

    func testByteSuffixes() throws {
        let config = try parse([("bw_size", "10M"), ("bw_one_time_burst", "2g"), ("bw_refill_time", "1000")])
        XCTAssertEqual(config?.bandwidth?.size, 10 << 20)
        XCTAssertEqual(config?.bandwidth?.oneTimeBurst, 2 << 30)
        XCTAssertEqual(try parse([("bw_size", "4k")])?.bandwidth?.size, 4096)
        XCTAssertEqual(try parse([("bw_size", "17179869183G")])?.bandwidth?.size, 17179869183 << 30)
        XCTAssertEqual(try parse([("bw_size", "18446744073709551615")])?.bandwidth?.size, .max)
    }

    func testPrefixes() throws {
        let config = try parse([("rx_bw_size", "1K"), ("rx_bw_refill_time", "10")], prefix: "rx_")
        XCTAssertEqual(config?.bandwidth, TokenBucketConfig(size: 1024, refillTimeMs: 10))
        var untouched: RateLimiterConfig?
        XCTAssertFalse(try RateLimiterOptions.apply(key: "tx_bw_size", value: "1", prefix: "rx_", to: &untouched))
        XCTAssertFalse(try RateLimiterOptions.apply(key: "bw_size", value: "1", prefix: "rx_", to: &untouched))
        XCTAssertFalse(try RateLimiterOptions.apply(key: "rx_bw_size", value: "1", prefix: "", to: &untouched))
        XCTAssertNil(untouched)
    }

    func testOtherKeysAreLeftToTheCaller() throws {
        var config: RateLimiterConfig? = RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 1))
        let before = config
        for key in ["path", "readonly", "bw", "bw_size_", "BW_SIZE", "size", "ops_refill", ""] {
            XCTAssertFalse(try RateLimiterOptions.apply(key: key, value: "garbage", prefix: "", to: &config), key)
        }
        XCTAssertEqual(config, before)
    }

    func testBadNumbersNameTheKeyAndValue() {
        let cases: [(String, String, String)] = [
            ("bw_size", "-1", "bw_size takes a whole number of bytes (optionally with a K, M or G suffix), got '-1'"),
            ("bw_size", "", "bw_size takes a whole number of bytes (optionally with a K, M or G suffix), got ''"),
            ("bw_size", "M", "got 'M'"),
            ("bw_size", "10X", "got '10X'"),
            ("bw_size", "1.5M", "got '1.5M'"),
            ("bw_size", "+5", "got '+5'"),
            ("bw_size", " 5", "got ' 5'"),
            ("bw_one_time_burst", "0x10", "bw_one_time_burst takes a whole number of bytes"),
            ("ops_size", "10K", "ops_size takes a whole number of operations, got '10K'"),
            ("ops_one_time_burst", "-3", "ops_one_time_burst takes a whole number of operations, got '-3'"),
            ("bw_refill_time", "1s", "bw_refill_time takes a whole number of milliseconds, got '1s'"),
            ("ops_refill_time", "ten", "ops_refill_time takes a whole number of milliseconds, got 'ten'"),
            ("bw_size", "18446744073709551616", "bw_size=18446744073709551616 does not fit in 64 bits"),
            ("bw_size", "17179869184G", "bw_size=17179869184G does not fit in 64 bits"),
            ("ops_refill_time", "99999999999999999999", "ops_refill_time=99999999999999999999 does not fit in 64 bits"),
        ]
        for (key, value, expected) in cases {
            var config: RateLimiterConfig?
            let text = message { _ = try RateLimiterOptions.apply(key: key, value: value, prefix: "", to: &config) }
            XCTAssertTrue(text.hasPrefix(key), "\(key)=\(value): \(text)")
            XCTAssertTrue(text.hasSubstring(expected), "\(key)=\(value): \(text)")
            XCTAssertFalse(text.hasSubstring("\n"), text)
            XCTAssertNil(config, "a bad value sets nothing")
        }
        var config: RateLimiterConfig?
        let text = message { _ = try RateLimiterOptions.apply(key: "tx_ops_size", value: "x", prefix: "tx_", to: &config) }
        XCTAssertEqual(text, "tx_ops_size takes a whole number of operations, got 'x'")
    }

    func testBadInputIsBadInput() {
        var config: RateLimiterConfig?
        XCTAssertThrowsError(try RateLimiterOptions.apply(key: "bw_size", value: "x", prefix: "", to: &config)) { error in
            XCTAssertEqual((error as? SwiftletError)?.isBadInput, true)
        }
    }

    func testSizeAndRefillTimeComeTogether() throws {
        let cases: [([(String, String)], String, String)] = [
            ([("bw_size", "10M")], "", "--disk: bw_size needs a non-zero bw_refill_time"),
            ([("bw_refill_time", "100")], "", "--disk: bw_refill_time needs a non-zero bw_size"),
            ([("ops_size", "5"), ("ops_refill_time", "0")], "", "--disk: ops_size needs a non-zero ops_refill_time"),
            ([("ops_one_time_burst", "5")], "", "--disk: ops_one_time_burst needs ops_size and ops_refill_time"),
            ([("tx_bw_size", "1")], "tx_", "--disk: tx_bw_size needs a non-zero tx_bw_refill_time"),
            ([("bw_size", "1"), ("bw_refill_time", "1"), ("ops_size", "1")], "", "--disk: ops_size needs"),
        ]
        for (pairs, prefix, expected) in cases {
            let config = try XCTUnwrap(try parse(pairs, prefix: prefix))
            let text = message { try RateLimiterOptions.validate(config, what: "--disk", prefix: prefix) }
            XCTAssertTrue(text.hasPrefix(expected), "\(pairs): \(text)")
        }
    }

    func testZeroMeansNoLimit() throws {
        let config = try XCTUnwrap(try parse([("bw_size", "0"), ("bw_refill_time", "0"), ("ops_size", "0")]))
        XCTAssertNoThrow(try RateLimiterOptions.validate(config, what: "--disk"))
        XCTAssertTrue(config.isUnlimited)
        XCTAssertTrue(RateLimiter(config, now: 0).isUnlimited)
    }

    func testLaterValueWins() throws {
        let config = try parse([("ops_size", "1"), ("ops_size", "7"), ("ops_refill_time", "3")])
        XCTAssertEqual(config?.ops, TokenBucketConfig(size: 7, refillTimeMs: 3))
    }

    func testHelpNamesEveryKey() {
        for key in ["bw_size", "bw_refill_time", "bw_one_time_burst", "ops_size", "ops_refill_time", "ops_one_time_burst"] {
            XCTAssertTrue(RateLimiterOptions.help.hasSubstring(key), key)
        }
    }
}
