"""What the tests and the bench both measure with: ending subprocesses (`processes`), a
clocked PulseAudio sink (`pulse_sink`), the mixed load and its frame connection (`load`),
audio metrics (`metrics`), a private speech-dispatcher (`speechd_setup`) and PocketSphinx
(`asr`). It lives with the tests, which must not import the bench; the bench imports it
(bench/ keeps a one-line module of each name that points here)."""
