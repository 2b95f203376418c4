#!/usr/bin/env python3
# Writes the seed inputs of tests/fuzz/corpus/ (run from the repo root; the
# outputs are committed). File names say what the reader must do with them:
# ok-* parse, bad-* are refused; tests/c/io_fuzz_replay.c checks exactly that.
import gzip, json, os, struct, zlib

def st(tensors, meta=None, crc=True, raw=None, hlen=None):
    data = b"".join(t[3] for t in tensors)
    hdr, at = {}, 0
    m = dict(meta or {})
    if crc: m["moongrad.crc32"] = "%08x" % zlib.crc32(data)
    if m: hdr["__metadata__"] = m
    for name, dt, shape, b in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [at, at + len(b)]}
        at += len(b)
    h = raw if raw is not None else json.dumps(hdr).encode()
    h += b" " * (-(8 + len(h)) % 8)
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data

def f32(*v): return struct.pack("<%df" % len(v), *v)
def f64(*v): return struct.pack("<%dd" % len(v), *v)

def idx(code, shape, payload):
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload

def put(target, name, b):
    with open(os.path.join("tests/fuzz/corpus", target, name), "wb") as f: f.write(b)

two = [("w", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6)), ("b", "F64", [2], f64(0.5, -1))]
put("safetensors", "ok-two.st", st(two, {"epoch": "3"}))
put("safetensors", "ok-nocrc.st", st(two, crc=False))
put("safetensors", "ok-dtypes.st", st([
    ("h", "F16", [2], struct.pack("<2e", 1.5, -2)), ("bf", "BF16", [1], b"\x80\x3f"),
    ("i", "I64", [2], struct.pack("<2q", -5, 1 << 40)), ("u", "U8", [3], b"\x00\x07\xff"),
    ("t", "BOOL", [2], b"\x00\x01"), ("j", "I32", [1], struct.pack("<i", -7)),
    ("s", "I16", [1], struct.pack("<h", -3)), ("c", "I8", [1], b"\xfe")]))
put("safetensors", "ok-empty.st", st([]))
put("safetensors", "ok-scalar-zero.st", st([("s", "F32", [], f32(7)), ("z", "F32", [0, 3], b"")]))
put("safetensors", "bad-overlap.st", st([("a", "F32", [1], f32(1))], crc=False,
    raw=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'))
put("safetensors", "bad-gap.st", st([("a", "F32", [2], f32(1, 2))], crc=False,
    raw=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'))
put("safetensors", "bad-crc.st", st(two)[:-1] + b"\x01")
put("safetensors", "bad-trunc.st", st(two)[:-5])
put("safetensors", "bad-json.st", st([], crc=False, raw=b'{"a":{"dtype":"F32",'))
put("safetensors", "bad-hugelen.st", st(two, hlen=1 << 62))
put("safetensors", "bad-dtype.st", st([("a", "F8_E4M3", [1], b"\x01")], crc=False))
put("safetensors", "bad-shape.st", st([("a", "F32", [3], f32(1, 2))], crc=False))
# regression: element counts whose product wraps around 2^64 (a bug found while testing)
put("safetensors", "bad-overflow.st", st([("a", "F32", [1 << 32, 1 << 32, 1 << 32], f32(1, 2))], crc=False))

put("idx", "ok-mem-ubyte", b"\x00" + idx(0x08, [2, 3], bytes(range(6))))
put("idx", "ok-file-float", b"\x01" + idx(0x0D, [2], struct.pack(">2f", 1.5, -2)))
put("idx", "ok-gz-short", b"\x02" + idx(0x0B, [3], struct.pack(">3h", -1, 2, 300)))
put("idx", "ok-mem-double", b"\x00" + idx(0x0E, [1, 1], struct.pack(">d", 0.25)))
put("idx", "ok-file-int", b"\x01" + idx(0x0C, [2], struct.pack(">2i", -70000, 5)))
put("idx", "ok-mem-byte", b"\x00" + idx(0x09, [2], b"\xff\x01"))
put("idx", "ok-file-gzipped", b"\x01" + gzip.compress(idx(0x08, [4, 2], bytes(range(8))), mtime=0))
put("idx", "bad-mem-magic", b"\x00" + b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
put("idx", "bad-file-trunc", b"\x01" + idx(0x08, [10], bytes(9)))
put("idx", "bad-gz-extra", b"\x02" + idx(0x08, [2], bytes(3)))
put("idx", "bad-file-gztrunc", b"\x01" + gzip.compress(idx(0x08, [100], bytes(100)), mtime=0)[:-6])
put("idx", "bad-mem-code", b"\x00" + idx(0x0A, [1], b"\x00"))
put("idx", "bad-mem-overflow", b"\x00" + idx(0x08, [0xFFFFFFFF] * 3 + [0x1000], b""))

put("csv", "ok-basic", b"\x00" + b"1,2,3\n4,5,6\n")
put("csv", "ok-header", b"\x01" + b"a,b\n1,2\n3e2,-4.5\n")
put("csv", "ok-semicolon", bytes([1 | 1 << 1]) + b"x;y\r\n1;2\r\n")
put("csv", "ok-quoted", b"\x01" + b'"x,1", "y"\n1, 2\n\n3 ,"4"\n')
put("csv", "ok-gz", b"\x08" + b"0.5,1\n2,3\n")
put("csv", "ok-tab", bytes([2 << 1]) + b"1\t2\n3\t4\n")
put("csv", "bad-ragged", b"\x00" + b"1,2\n3\n")
put("csv", "bad-nonnum", b"\x00" + b"1,2\n3,x\n")
put("csv", "bad-quote", b"\x01" + b'"a,b\n1,2\n')
put("csv", "bad-empty", b"\x00" + b"\n\n")
