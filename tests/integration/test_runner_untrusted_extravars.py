"""sopctl hands the change request to the stage playbooks as data, never as a template: a requester
who writes ``{{ lookup('pipe', ...) }}`` into any field of a change request must not run a command on
the controller (Ansible templates the strings of extra vars given as JSON; sopctl marks them !unsafe)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from sopctl.runner import Progress, run_stage

pytestmark = pytest.mark.integration

PLAYBOOK = """\
- name: Use the change request the way the stages do
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Keep it as a fact (templating happens here, if anywhere)
      ansible.builtin.set_fact:
        seen: "{{ itsop_change }}"
    - name: Write what arrived
      ansible.builtin.copy:
        dest: "{{ itsop_evidence_dir }}/seen.json"
        content: "{{ seen | to_json }}"
        mode: "0600"
"""


def test_template_syntax_in_a_change_request_is_data(tmp_path: Path):
    witness = tmp_path / "pwned"
    hostile = "{{ lookup('ansible.builtin.pipe', 'touch %s') }}" % witness
    cr = {"id": "CHG-2026-0900", "description": hostile, "items": {"network_config": {
        "template": "{% for p in bgp_peers %}neighbor {{ p }}\n{% endfor %}", "vars": {"x": "{{ 7 * 6 }}"}}},
        "count": 3, "strings_that_read_as_other_yaml": ["123", "true", "*", "&a", "~", "1.5", "null", "", "- x"]}
    playbook = tmp_path / "stage.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    private = tmp_path / "runner"
    private.mkdir()
    result = run_stage(stage="1", playbook=playbook, private_data_dir=private, inventory=str(inventory),
                       change_id=cr["id"], cr=cr, evidence_dir=evidence, audit_dir=tmp_path / "audit",
                       operator="eko", token="t" * 32, ident="run-1", progress=Progress("1", io.StringIO()),
                       cancel=lambda: False)
    assert result.rc == 0, result.failures
    assert not witness.exists(), "a change request ran a command on the controller"
    assert json.loads((evidence / "seen.json").read_text()) == cr  # every string as written, numbers kept
    assert not (private / "env" / "itsop-extravars.yml").exists(), "the run's extra vars were left behind"
