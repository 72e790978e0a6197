"""Control: the `kokorod` command line (cli, model_cli, tune), the service managers
(service/: systemd, launchd) and the speech-dispatcher installer (speechd). It may import
anything in `kokorod` and `kokorod_common`; nothing in `kokorod` imports it back."""
