"""Local multi-node testnets as real processes (``cluster``) and the demo that labels on them."""
