"""Core ML target: mlprogram packages from torch.export programs (converts anywhere, runs on macOS)."""
