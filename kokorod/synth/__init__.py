"""Synthesis: text in, audio out — the Kokoro model in onnxruntime (engine, providers), the
streaming vocoder and its window plan (vocoder, windows, calibrate, norm_*), and what turns
text into phonemes (text/, segment, words, phonemes, voices, headroom, heap). It may import
`kokorod.store` (model files), the ground floor (`kokorod.config`, `extras`, `progress`) and
`kokorod_common`; never `kokorod.serve` or `kokorod.ctl`."""
