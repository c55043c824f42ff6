// Signed records (protocol/records.py): body maps, sign-bytes, the wire envelope, ids.
//   sign_bytes = "annot/v1/" + kind + 0x00 + network id (32 B) + canonical([kind, author, seq, body])
//   record     = canonical({a: author, b: body, k: kind, n: network id[:8], s: seq, x: signature})
import { concat } from "./bytes.js";
import { cidFromString, cidOfRaw, cidToString } from "./cid.js";
import { publicKeyFromPeerId } from "./keys.js";
import { encodeCanonical } from "./msgpack.js";

const utf8 = new TextEncoder();
export const VERSION_TAG = utf8.encode("annot/v1/");
export const NET_TAG_LEN = 8;
export const MAX_LABEL_LEN = 128;

/** The body map of an annotation; `task` and `item` are CID strings. */
export function annotationBody(task, item, label) {
  if (typeof label !== "string" || !label || label.length > MAX_LABEL_LEN) {
    throw new Error(`a label is a string of 1..${MAX_LABEL_LEN} characters`);
  }
  return { item: cidFromString(item), label, task: cidFromString(task) };
}

/** The body map of a task; CIDs as strings, `allow` as peer ids. */
export function taskBody(t) {
  return {
    allow: (t.allow ?? []).map(publicKeyFromPeerId),
    close_time: t.close_time ?? 0,
    instructions: t.instructions ? cidFromString(t.instructions) : null,
    items: t.items.map(cidFromString),
    labels: [...t.labels],
    redundancy: t.redundancy,
    reward_per_item: t.reward_per_item,
    rule: t.rule ?? "majority",
    title: t.title,
    validator_share_bps: t.validator_share_bps,
    weights_from: (t.weights_from ?? []).map(cidFromString),
  };
}

export function signBytes(networkId, kind, author, seq, body) {
  if (networkId.length !== 32) throw new Error("a network id is 32 bytes");
  return concat(VERSION_TAG, utf8.encode(kind), Uint8Array.of(0), networkId,
    encodeCanonical([kind, author, seq, body]));
}

/** Sign `body` as record `seq` of `key`; returns {data, cid, signature, signBytes}. */
export async function signRecord(networkId, key, seq, kind, body) {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new Error(`seq starts at 1, got ${seq}`);
  const toSign = signBytes(networkId, kind, key.publicKey, seq, body);
  const signature = await key.sign(toSign);
  const data = encodeCanonical({
    a: key.publicKey, b: body, k: kind, n: networkId.slice(0, NET_TAG_LEN), s: seq, x: signature,
  });
  return { data, cid: cidToString(cidOfRaw(data)), signature, signBytes: toSign };
}
