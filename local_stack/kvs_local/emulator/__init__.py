"""A local Kinesis Video Streams signaling service (control plane + WebSocket data plane)."""
