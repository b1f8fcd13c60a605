"""The local stack: KVS signaling emulator, event-source runner, Docker-free invoke."""
