"""Training, export and benchmarks. Needs the [train] extra; the streaming path never imports this package."""
