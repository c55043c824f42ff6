"""The public gateway: the labeling web app and token-less, read-only JSON beside the
admin RPC, plus admission of records their authors signed themselves.

:func:`node.gateway.server.serve_gateway` runs it over a :class:`GatewayAPI`
(:class:`node.gateway.adapter.NodeGateway` for a running node).
"""
