import Foundation

/// SHA-256 of files and folders, as the manifest records them (`edge_sam_sdk/bundle.py`):
/// a file's hex digest, or for a folder (an `.mlpackage`) the digest over its files sorted by
/// path (component by component, as Python sorts `Path`s) of each relative POSIX path followed
/// by that file's hex digest. Plain Swift (FIPS 180-4), so the package needs Foundation only.
public enum SHA256 {
    /// Hex digest of `data`.
    public static func hex(_ data: Data) -> String {
        var h = Hasher256()
        h.update(data)
        return h.hexDigest()
    }

    /// Hex digest of the file at `url`, read in 4 MiB chunks.
    public static func file(_ url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var h = Hasher256()
        while let chunk = try handle.read(upToCount: 1 << 22), !chunk.isEmpty {
            h.update(chunk)
        }
        return h.hexDigest()
    }

    /// `sha256_tree`: a file's digest, or a folder's over its sorted files.
    public static func tree(_ url: URL) throws -> String {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
        if !isDir.boolValue { return try file(url) }
        let paths = try FileManager.default.subpathsOfDirectory(atPath: url.path).filter {
            var dir: ObjCBool = false
            return FileManager.default.fileExists(atPath: url.appendingPathComponent($0).path, isDirectory: &dir)
                && !dir.boolValue
        }
        let sorted = paths.sorted { a, b in
            let pa = a.split(separator: "/").map { Array($0.utf8) }
            let pb = b.split(separator: "/").map { Array($0.utf8) }
            return pa.lexicographicallyPrecedes(pb) { $0.lexicographicallyPrecedes($1) }
        }
        var h = Hasher256()
        for p in sorted {
            h.update(Data(p.utf8))
            h.update(Data(try file(url.appendingPathComponent(p)).utf8))
        }
        return h.hexDigest()
    }
}

/// FIPS 180-4 SHA-256.
struct Hasher256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
    private var state: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var pending: [UInt8] = []
    private var length: UInt64 = 0

    mutating func update(_ data: Data) {
        length &+= UInt64(data.count)
        pending.append(contentsOf: data)
        var offset = 0
        while pending.count - offset >= 64 {
            block(pending, offset)
            offset += 64
        }
        pending.removeFirst(offset)
    }

    func hexDigest() -> String {
        var copy = self
        var tail: [UInt8] = [0x80] + [UInt8](repeating: 0, count: (119 - pending.count) % 64)
        let bits = length &* 8
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
        let lengthBefore = copy.length
        copy.update(Data(tail))
        copy.length = lengthBefore
        return copy.state.map { String(format: "%08x", $0) }.joined()
    }

    private mutating func block(_ bytes: [UInt8], _ at: Int) {
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            w[i] = UInt32(bytes[at + 4 * i]) << 24 | UInt32(bytes[at + 4 * i + 1]) << 16
                | UInt32(bytes[at + 4 * i + 2]) << 8 | UInt32(bytes[at + 4 * i + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7])
        for i in 0..<64 {
            let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ Self.k[i] &+ w[i]
            let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
            (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        for (i, v) in [a, b, c, d, e, f, g, h].enumerated() { state[i] &+= v }
    }

    private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
