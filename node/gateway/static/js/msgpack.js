// Canonical msgpack, the encoder half of protocol/encoding.py: map keys are strings,
// sorted by code point; integers in their shortest form; strings UTF-8 "str";
// byte strings (Uint8Array) "bin"; arrays; null/true/false. No floats.

const utf8 = new TextEncoder();

class Writer {
  constructor() { this.parts = []; this.size = 0; }
  byte(b) { this.push(Uint8Array.of(b)); }
  push(bytes) { this.parts.push(bytes); this.size += bytes.length; }
  uint(bytes, value) {
    const out = new Uint8Array(bytes);
    let v = BigInt(value);
    for (let i = bytes - 1; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
    this.push(out);
  }
  head(tag, n) { this.byte(tag); this.uint(tag === 0xc4 || tag === 0xd9 ? 1 : tag === 0xc5 || tag === 0xda || tag === 0xdc || tag === 0xde ? 2 : 4, n); }
  bytes() {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

function encodeInt(w, v) {
  const n = BigInt(v);
  if (n >= 0n) {
    if (n < 128n) w.byte(Number(n));
    else if (n < 0x100n) { w.byte(0xcc); w.uint(1, n); }
    else if (n < 0x10000n) { w.byte(0xcd); w.uint(2, n); }
    else if (n < 0x100000000n) { w.byte(0xce); w.uint(4, n); }
    else if (n < 0x10000000000000000n) { w.byte(0xcf); w.uint(8, n); }
    else throw new RangeError(`integer ${n} does not fit in 64 bits`);
    return;
  }
  const twos = (bits) => (1n << BigInt(bits)) + n;
  if (n >= -32n) w.byte(Number(twos(8)));
  else if (n >= -0x80n) { w.byte(0xd0); w.uint(1, twos(8)); }
  else if (n >= -0x8000n) { w.byte(0xd1); w.uint(2, twos(16)); }
  else if (n >= -0x80000000n) { w.byte(0xd2); w.uint(4, twos(32)); }
  else if (n >= -0x8000000000000000n) { w.byte(0xd3); w.uint(8, twos(64)); }
  else throw new RangeError(`integer ${n} does not fit in 64 bits`);
}

function byCodePoint(a, b) {
  const x = Array.from(a), y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function encodeValue(w, v, depth) {
  if (depth > 32) throw new RangeError("nesting deeper than 32 levels");
  if (v === null || v === undefined) w.byte(0xc0);
  else if (v === false) w.byte(0xc2);
  else if (v === true) w.byte(0xc3);
  else if (typeof v === "bigint") encodeInt(w, v);
  else if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new TypeError(`floats are not allowed in canonical data: ${v}`);
    encodeInt(w, v);
  } else if (typeof v === "string") {
    const b = utf8.encode(v);
    if (b.length < 32) w.byte(0xa0 | b.length);
    else if (b.length < 0x100) w.head(0xd9, b.length);
    else if (b.length < 0x10000) w.head(0xda, b.length);
    else w.head(0xdb, b.length);
    w.push(b);
  } else if (v instanceof Uint8Array) {
    if (v.length < 0x100) w.head(0xc4, v.length);
    else if (v.length < 0x10000) w.head(0xc5, v.length);
    else w.head(0xc6, v.length);
    w.push(v);
  } else if (Array.isArray(v)) {
    if (v.length < 16) w.byte(0x90 | v.length);
    else if (v.length < 0x10000) w.head(0xdc, v.length);
    else w.head(0xdd, v.length);
    for (const x of v) encodeValue(w, x, depth + 1);
  } else if (typeof v === "object") {
    const keys = Object.keys(v).sort(byCodePoint);
    if (keys.length < 16) w.byte(0x80 | keys.length);
    else if (keys.length < 0x10000) w.head(0xde, keys.length);
    else w.head(0xdf, keys.length);
    for (const k of keys) { encodeValue(w, k, depth + 1); encodeValue(w, v[k], depth + 1); }
  } else {
    throw new TypeError(`cannot encode ${typeof v} canonically`);
  }
}

/** The canonical msgpack bytes of `value` (the same bytes as protocol.encoding.encode_canonical). */
export function encodeCanonical(value) {
  const w = new Writer();
  encodeValue(w, value, 0);
  return w.bytes();
}
