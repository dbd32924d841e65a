"""`python -m qdq_backend`: the JSON-RPC backend the qdq pipeline spawns (docs/backend-protocol.md)."""

from .server import main

if __name__ == "__main__":
    main()
