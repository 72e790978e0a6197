"""Serving: the daemon process — the Unix socket server and its connections, requests and
their jobs, the scheduler that steps synthesis, the speaker queue, the audio cache, session
ops, the HTTP front-end and the runtime files. It may import `kokorod.synth`,
`kokorod.store`, the ground floor (`kokorod.config`, `extras`, `logs`, `progress`) and
`kokorod_common`; never `kokorod.ctl`."""
