// Read a CARv1 file with @ipld/car under Node and check it as `ipfs dag import` would
// need it: every block hashes to its CID, and every root's DAG is complete (each dag-pb
// link resolves to a block in the archive). With a second argument, also list the root
// UnixFS directory's files (recursively, through HAMT shards) with @helia/unixfs.
//
// usage: node car_check.mjs FILE.car [--ls]
// Output: {"roots": [cid], "blocks": n, "missing": [cid], "bad": [cid], "files": {path: cid}}

import { readFile } from 'node:fs/promises'
import { CarReader } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { unixfs } from '@helia/unixfs'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { sha256 } from 'multiformats/hashes/sha2'
import { equals } from 'multiformats/bytes'

const [file, flag] = process.argv.slice(2)
const reader = await CarReader.fromBytes(await readFile(file))
const roots = await reader.getRoots()
const store = new MemoryBlockstore()
const have = new Map()
const out = { roots: roots.map(String), blocks: 0, missing: [], bad: [], files: {} }
for await (const { cid, bytes } of reader.blocks()) {
  const digest = await sha256.digest(bytes)
  if (!equals(digest.digest, cid.multihash.digest)) out.bad.push(cid.toString())
  await store.put(cid, bytes)
  have.set(cid.toString(), bytes)
  out.blocks++
}
const seen = new Set()
const stack = [...roots]
while (stack.length > 0) {
  const cid = stack.pop()
  const key = cid.toString()
  if (seen.has(key)) continue
  seen.add(key)
  if (!have.has(key)) { out.missing.push(key); continue }
  if (cid.code === dagPb.code) {
    const node = dagPb.decode(have.get(key))
    for (const link of node.Links) stack.push(link.Hash)
  }
}
if (flag === '--ls') {
  const fs = unixfs({ blockstore: store })
  async function walk (cid, prefix) {
    for await (const entry of fs.ls(cid)) {
      const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
      const kind = entry.cid.code === dagPb.code ? (await fs.stat(entry.cid)).type : 'raw'
      if (kind === 'directory') await walk(entry.cid, path)
      else out.files[path] = entry.cid.toString()
    }
  }
  await walk(roots[0], '')
}
process.stdout.write(JSON.stringify(out))
