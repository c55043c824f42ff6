// Runs the web app's encoder and signer under Node on the inputs the Python test
// sends on stdin; prints what the JS produced, for the test to compare with the
// golden vectors. Usage: node golden_check.mjs < inputs.json
import { readFileSync } from "node:fs";
import { fromHex, toHex } from "../../node/gateway/static/js/bytes.js";
import { loadKey } from "../../node/gateway/static/js/keys.js";
import { annotationBody, signRecord, taskBody } from "../../node/gateway/static/js/records.js";

const input = JSON.parse(readFileSync(0, "utf8"));

// raw maps (votes, tally votes) come with bytes as {"$hex": "..."}
function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if ("$hex" in v) return fromHex(v.$hex);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]));
  }
  return v;
}

const out = {};
for (const backend of input.backends) {
  const peerIds = {};
  for (const [name, seed] of Object.entries(input.seeds)) {
    const key = await loadKey(fromHex(seed), backend);
    peerIds[name] = { public_key: toHex(key.publicKey), peer_id: key.peerId };
  }
  const signer = await loadKey(fromHex(input.signer_seed), backend);
  const records = {};
  for (const [name, r] of Object.entries(input.records)) {
    let body;
    if (r.kind === "annotation") body = annotationBody(r.fields.task, r.fields.item, r.fields.label);
    else if (r.kind === "task") body = taskBody(r.fields);
    else body = revive(r.map);
    const rec = await signRecord(fromHex(input.network_id), signer, r.seq, r.kind, body);
    records[name] = { sign_bytes: toHex(rec.signBytes), record: toHex(rec.data), cid: rec.cid,
      signature: toHex(rec.signature) };
  }
  out[backend] = { peer_ids: peerIds, records, backend: signer.backend };
}
process.stdout.write(JSON.stringify(out));
