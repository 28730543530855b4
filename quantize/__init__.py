"""Model export and quantization (see the quantize issue); may import device/, never the reverse."""
