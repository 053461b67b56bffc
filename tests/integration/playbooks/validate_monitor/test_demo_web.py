"""testinfra file shipped with the example change: run by role validate through the ansible backend."""


def test_service_running(host):
    assert host.service("itsop-demo-web").is_running


def test_config_not_world_readable(host):
    assert host.file("/etc/itsop-demo-web/config.ini").mode & 0o007 == 0
