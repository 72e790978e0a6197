"""The model store: which model and voice files exist, where they live, downloading and
verifying them (hashing, voice_packs) and the first run that installs them. It may import
only the ground floor (`kokorod.config`, `progress`) and `kokorod_common`; never
`kokorod.synth`, `kokorod.serve` or `kokorod.ctl`."""
