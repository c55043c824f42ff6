// Import a folder with Helia's UnixFS under Node and print every CID as JSON, for
// tests/protocol/test_unixfs_dir.py to compare with annot.
//
// usage: node unixfs_dir.mjs FOLDER THRESHOLD [THRESHOLD...]
// Settings are Kubo's `ipfs add -r --cid-version=1` defaults (which are also
// ipfs-unixfs-importer's own): 262,144-byte chunks, balanced layout of 174 links, raw
// leaves, CIDv1, HAMT sharding when a folder's `links-bytes` estimate is over the
// threshold (the default is 262,144). The folder's files are read once and imported
// once per threshold, each into a fresh block store.
// Output: {THRESHOLD: {"root": cid, "entries": {path: cid},
//                      "blocks": [sha2-256 digest hex of every block stored]}, ...}

import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { unixfs } from '@helia/unixfs'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const [folder, ...thresholds] = process.argv.slice(2)

async function collect (dir, prefix, out) {
  const items = await readdir(dir, { withFileTypes: true })
  for (const item of items) {
    const path = prefix === '' ? item.name : `${prefix}/${item.name}`
    if (item.isDirectory()) {
      out.push({ path })
      await collect(join(dir, item.name), path, out)
    } else if (item.isFile()) {
      out.push({ path, content: await readFile(join(dir, item.name)) })
    } else {
      throw new Error(`${path}: not a file or folder`)
    }
  }
  return out
}

const tree = await collect(folder, '', [])
const results = {}
for (const threshold of thresholds) {
  const blockstore = new MemoryBlockstore()
  const fs = unixfs({ blockstore })
  const out = { entries: {}, blocks: [] }
  const source = tree.map((e) => (e.content == null ? { path: e.path } : { ...e }))
  for await (const entry of fs.addAll(source, {
    cidVersion: 1,
    rawLeaves: true,
    wrapWithDirectory: true,
    shardSplitThresholdBytes: Number(threshold),
    chunker: fixedSize({ chunkSize: 262144 }),
    layout: balanced({ maxChildrenPerNode: 174 })
  })) {
    out.entries[entry.path] = entry.cid.toString()
    if (entry.path === '') out.root = entry.cid.toString()
  }
  for await (const { cid } of blockstore.getAll()) {
    out.blocks.push(Buffer.from(cid.multihash.digest).toString('hex'))
  }
  results[threshold] = out
}
process.stdout.write(JSON.stringify(results))
