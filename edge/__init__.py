"""The light runtime: numpy, an interpreter and sounddevice. Never TensorFlow or librosa."""
