"""Streaming stages: source -> ring -> vad -> windower -> (embedder, heads) -> smoother -> sinks."""
