// CIDv1 strings and bytes (protocol/cid.py): "b" + base32 of <version><codec><multihash>.
import { base32, concat, fromBase32, sha256 } from "./bytes.js";

export const RAW = 0x55;

/** The CIDv1 (raw, sha2-256) bytes of `data`: how a record's id is made. */
export function cidOfRaw(data) {
  return concat(Uint8Array.of(0x01, RAW, 0x12, 0x20), sha256(data));
}

export function cidToString(bytes) {
  return "b" + base32(bytes);
}

/** CID bytes from a "b..." string; throws naming what is wrong. */
export function cidFromString(s) {
  if (typeof s !== "string" || !s.startsWith("b")) throw new Error(`not a CIDv1 base32 string: ${s}`);
  const b = fromBase32(s.slice(1));
  if (b.length < 4 || b[0] !== 0x01) throw new Error(`not a CIDv1: ${s}`);
  return b;
}
