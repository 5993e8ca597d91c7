"""Audio from the evidence container: 16 kHz mono PCM in memory, and its mel spectrogram."""

from core.audio.decode import AudioTrack, load_audio

__all__ = ["AudioTrack", "load_audio"]
