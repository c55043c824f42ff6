// Ed25519 keys and libp2p peer ids (protocol/keys.py) in the browser.
// A key is its 32-byte seed, the same bytes `annot keygen` writes to a key file.
// Signing uses WebCrypto's Ed25519 where the browser has it (it needs a secure
// context: https, localhost or 127.0.0.1), else the vendored @noble/ed25519.
import { sha512 } from "../vendor/noble-hashes/sha2.js";
import { base58, concat, fromBase58, fromBase64 } from "./bytes.js";

let nobleLib = null;

/** @noble/ed25519, loaded only where WebCrypto cannot sign (or when asked for). */
async function noble() {
  if (nobleLib === null) {
    nobleLib = await import("../vendor/noble-ed25519/index.js");
    nobleLib.hashes.sha512 = sha512;
  }
  return nobleLib;
}

const PEER_ID_PREFIX = Uint8Array.of(0x00, 0x24, 0x08, 0x01, 0x12, 0x20);
const PKCS8_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b,
  0x65, 0x70, 0x04, 0x22, 0x04, 0x20);

export function peerIdFromPublicKey(pub) {
  if (pub.length !== 32) throw new Error(`an Ed25519 public key is 32 bytes, got ${pub.length}`);
  return base58(concat(PEER_ID_PREFIX, pub));
}

export function publicKeyFromPeerId(peerId) {
  const raw = fromBase58(peerId);
  if (raw.length !== 38 || !raw.slice(0, 6).every((x, i) => x === PEER_ID_PREFIX[i])) {
    throw new Error(`peer id ${peerId} does not name an Ed25519 key (want 12D3KooW...)`);
  }
  return raw.slice(6);
}

let webCryptoOk = null;

/** Whether this browser signs Ed25519 with WebCrypto (checked once). */
export async function hasWebCryptoEd25519() {
  if (webCryptoOk === null) {
    try {
      await globalThis.crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign"]);
      webCryptoOk = true;
    } catch {
      webCryptoOk = false;
    }
  }
  return webCryptoOk;
}

/** A signing key from a 32-byte seed. `backend` is "webcrypto", "noble" or undefined (best). */
export async function loadKey(seed, backend) {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new Error(`a key file holds a 32-byte Ed25519 seed; this one has ${seed?.length ?? 0} bytes`);
  }
  seed = Uint8Array.from(seed);
  const use = backend ?? ((await hasWebCryptoEd25519()) ? "webcrypto" : "noble");
  if (use === "webcrypto") {
    const subtle = globalThis.crypto.subtle;
    const priv = await subtle.importKey("pkcs8", concat(PKCS8_PREFIX, seed), { name: "Ed25519" },
      true, ["sign"]);
    const jwk = await subtle.exportKey("jwk", priv);
    const publicKey = fromBase64(jwk.x);
    return { seed, publicKey, peerId: peerIdFromPublicKey(publicKey), backend: use,
      sign: async (msg) => new Uint8Array(await subtle.sign({ name: "Ed25519" }, priv, msg)) };
  }
  if (use !== "noble") throw new Error(`unknown signing backend ${use}`);
  const ed = await noble();
  const publicKey = ed.getPublicKey(seed);
  return { seed, publicKey, peerId: peerIdFromPublicKey(publicKey), backend: use,
    sign: async (msg) => ed.sign(msg, seed) };
}

/** A fresh key: 32 random bytes from the browser's CSPRNG. */
export async function createKey(backend) {
  return loadKey(globalThis.crypto.getRandomValues(new Uint8Array(32)), backend);
}
