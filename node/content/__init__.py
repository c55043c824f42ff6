"""IPFS content: the block store, UnixFS files, bitswap, the Kubo client and the router
that looks a block up locally, then on bitswap peers, then on Kubo."""
