// Checks annot's payout claim file with the reference @openzeppelin/merkle-tree (1.0.8):
// StandardMerkleTree.load() accepts the dump (it re-validates every node and leaf), the
// tree rebuilt from the values with StandardMerkleTree.of() is the same, the root is the
// file's, and every claim's proof verifies with StandardMerkleTree.verify() (the same
// computation as OpenZeppelin's MerkleProof.verify on chain).
// Usage: node payout_check.mjs payouts.json  -> prints a JSON summary.
import { readFileSync } from "node:fs";
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
const tree = StandardMerkleTree.load(doc);
const rebuilt = StandardMerkleTree.of(doc.values.map((v) => v.value), doc.leafEncoding);
let verified = 0;
const failed = [];
for (const c of doc.claims) {
  const ok = StandardMerkleTree.verify(doc.root, doc.leafEncoding, [c.address, c.amount], c.proof)
    && tree.verify([c.address, c.amount], c.proof);
  if (ok) verified += 1; else failed.push(c.address);
}
const proofsMatch = doc.claims.every((c, i) =>
  JSON.stringify(tree.getProof(i)) === JSON.stringify(c.proof));
console.log(JSON.stringify({
  root: tree.root,
  file_root: doc.root,
  same_dump: JSON.stringify(rebuilt.dump()) === JSON.stringify(tree.dump()),
  claims: doc.claims.length,
  verified,
  failed,
  proofs_match: proofsMatch,
}));
