// The annotator's key and seq counter, kept in this browser's localStorage.
// The key is its 32-byte seed (the format of `annot keygen` files); it never
// leaves the browser. Seqs are allocated here, where the key lives: the counter
// is saved before a record is signed, and moved back only when the gateway says
// the record was refused (so it was stored nowhere).
import { fromHex, toHex } from "./bytes.js";
import { createKey, loadKey } from "./keys.js";

const KEY = "annot.key";
const seqKey = (peerId) => `annot.seq.${peerId}`;

export async function savedKey() {
  const hex = localStorage.getItem(KEY);
  return hex ? loadKey(fromHex(hex)) : null;
}

export async function newKey() {
  const key = await createKey();
  localStorage.setItem(KEY, toHex(key.seed));
  localStorage.setItem(seqKey(key.peerId), "0");
  return key;
}

/** Import a key file's bytes; `highestSeq` is what the network holds for it. */
export async function importKey(bytes, highestSeq) {
  const key = await loadKey(bytes);
  localStorage.setItem(KEY, toHex(key.seed));
  raiseSeq(key.peerId, highestSeq);
  return key;
}

export function forgetKey() { localStorage.removeItem(KEY); }

export function keyFile(key) {
  return new Blob([key.seed], { type: "application/octet-stream" });
}

export function lastSeq(peerId) {
  return Number(localStorage.getItem(seqKey(peerId)) ?? "0");
}

/** Never go below what the network already holds for this key. */
export function raiseSeq(peerId, highest) {
  if (highest > lastSeq(peerId)) localStorage.setItem(seqKey(peerId), String(highest));
}

/** Reserve the next seq (saved before anything is signed with it). */
export function takeSeq(peerId) {
  const seq = lastSeq(peerId) + 1;
  localStorage.setItem(seqKey(peerId), String(seq));
  return seq;
}

/** Give back `seq` after the gateway refused its record, if nothing was taken since. */
export function returnSeq(peerId, seq) {
  if (lastSeq(peerId) === seq) localStorage.setItem(seqKey(peerId), String(seq - 1));
}
