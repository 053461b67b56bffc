"""Role update refuses a configuration template that is no longer the one the change request bound
(``template_sha256``, added by the loader, so the approvals bind the template's content): a template
edited between loading and applying never reaches the host, and nothing on the host changes."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.helpers import ansible_playbook

pytestmark = pytest.mark.integration

PLAYBOOK = """\
- name: The update role's checks before a change
  hosts: all
  gather_facts: true
  tasks:
    - name: Run them
      ansible.builtin.include_role:
        name: itsop.change.update
        tasks_from: before
      vars:
        update_change: "{{ change }}"
        update_template_dir: "{{ template_dir }}"
        update_evidence_dir: "{{ evidence_dir }}"
"""


def test_a_template_edited_after_loading_is_refused(testhost, tmp_path):
    template = tmp_path / "templates" / "greeting.ini.j2"
    template.parent.mkdir()
    template.write_text("[greeting]\ntext = hello\n")
    bound = hashlib.sha256(template.read_bytes()).hexdigest()
    template.write_text("[greeting]\ntext = {{ lookup('ansible.builtin.env', 'HOME') }}\n")  # edited since
    change = {"id": "CHG-2026-0950", "items": {"packages": [], "config_files": [
        {"dest": "/etc/itsop-demo-web/greeting.ini", "template": "greeting.ini.j2", "template_sha256": bound}]}}
    (tmp_path / "templates" / "vars.json").write_text(json.dumps({
        "change": change, "template_dir": str(template.parent), "evidence_dir": str(tmp_path / "evidence")}))
    playbook = tmp_path / "before.yml"
    playbook.write_text(PLAYBOOK)
    proc = ansible_playbook(playbook, "-i", str(testhost.inventory(tmp_path)),
                            "-e", f"@{tmp_path / 'templates' / 'vars.json'}", check=False)
    now = hashlib.sha256(template.read_bytes()).hexdigest()
    assert proc.returncode != 0
    assert (f"config file /etc/itsop-demo-web/greeting.ini: template greeting.ini.j2 has sha256 {now}, the change "
            f"request binds {bound}") in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert testhost.exec("test", "-e", "/var/lib/itsop/changes/CHG-2026-0950", check=False).returncode != 0
    assert not (tmp_path / "evidence").exists()
