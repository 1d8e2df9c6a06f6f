//! Unit tests of the checkpoint reader on small synthetic safetensors files.
