"""The intended configuration of a device from a change request (module_utils/_network/intent.py and
the filter itsop.change.network_intent): lines as they are, templates rendered in Jinja's sandbox with
the request's vars under the device's own, and hostile templates refused with the device named."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.itsop.change.plugins.filter.network_intent import network_intent
from ansible_collections.itsop.change.plugins.module_utils._network.intent import IntentError, item_errors, render

TEMPLATE = ("router bgp\n address-family ipv4 unicast\n{% for peer in peers %}\n"
            "  neighbor {{ peer }} maximum-prefix {{ limit }}\n{% endfor %}\n")


def test_lines_are_returned_as_they_are():
    assert render({"lines": "ip route 198.51.100.0/24 Null0\n"}, "rtr") == "ip route 198.51.100.0/24 Null0\n"
    assert render({}, "rtr") == ""


def test_template_rendered_with_request_vars_under_the_device_vars():
    item = {"template": TEMPLATE, "vars": {"limit": 100, "peers": []}}
    text = render(item, "rtr-prd-2", {"peers": ["10.0.0.1", "10.0.0.3"]})
    assert text == ("router bgp\n address-family ipv4 unicast\n"
                    "  neighbor 10.0.0.1 maximum-prefix 100\n  neighbor 10.0.0.3 maximum-prefix 100\n")
    assert render({"template": "hostname {{ inventory_hostname }}\n"}, "rtr-stg") == "hostname rtr-stg\n"
    # the device's own value wins over the request's
    assert "maximum-prefix 5" in render(item, "r", {"peers": ["10.0.0.1"], "limit": 5})


@pytest.mark.parametrize(("template", "host_vars", "message"), [
    (TEMPLATE, {}, "items.network_config.template for rtr-prd-2: 'peers' is undefined (set it in "
                   "items.network_config.vars or in the device's inventory variable network_template_vars)"),
    ("{{ lookup('file', '/etc/passwd') }}", {}, "'lookup' is undefined"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", {}, "unsafe"),
    ("{{ 'x' * 10000000 }}", {}, "more than 1000000 characters or items (repeated 10000000 times)"),
    ("{{ 9 ** 999999 }}", {}, "an exponent larger than 64"),
    ("hostname {{ name }}\n", {"name": "a\r\nwrite erase"}, "line 1 holds a carriage return"),
    ("router bgp\n neighbor 10.0.0.1 {{ what }}\n", {"what": "password s3cr3t"}, "sets a password"),
    ("{% if false %}x{% endif %}\n", {}, "renders no configuration line for this device"),
    ("hostname {{ n }}\n", {"1bad": 1, "n": "a"}, "'1bad': not template variable names"),
])
def test_hostile_or_broken_templates_are_refused_naming_the_device(template, host_vars, message):
    with pytest.raises(IntentError) as caught:
        render({"template": template}, "rtr-prd-2", host_vars)
    assert message in str(caught.value)
    assert "rtr-prd-2" in str(caught.value)


def test_device_vars_must_be_a_mapping():
    with pytest.raises(IntentError, match="network_template_vars of rtr is a list, not a mapping"):
        render({"template": "hostname a\n"}, "rtr", ["x"])


def test_validation_reports_syntax_with_its_line_and_a_secret_in_the_template_text():
    assert item_errors({"template": "a\n{{ x \n"}) == [
        "items.network_config.template: line 2: unexpected end of template, expected 'end of print statement'."]
    assert item_errors({"template": TEMPLATE, "vars": {"limit": 1}}) == []
    assert any("sets a community" in e for e in item_errors({"template": "snmp-server community {{ c }} RO\n"}))


def test_filter_raises_an_ansible_error_naming_itself():
    assert network_intent({"template": "hostname {{ inventory_hostname }}\n"}, "r1") == "hostname r1\n"
    with pytest.raises(AnsibleFilterError, match=r"^itsop.change.network_intent: items.network_config.template "
                                                 r"for r1: 'x' is undefined"):
        network_intent({"template": "{{ x }}\n"}, "r1", {})
