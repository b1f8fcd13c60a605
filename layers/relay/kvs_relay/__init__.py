"""KVS signaling relay: the library the Lambda functions share (deployed as a layer)."""
