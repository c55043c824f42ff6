"""Consensus glue: the service that feeds :mod:`protocol.consensus` and performs its
actions, this node's proposals, and task tallies. It depends only on the narrow ports
in :mod:`node.consensus.ports`, never on p2p, content, rpc or the daemon."""
