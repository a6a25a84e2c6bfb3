# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rendered Pod as YAML text (:func:`dump_pod`)."""

import yaml

from .yamlsafe import _MAP_TAG, _SEQ_TAG, _STR_TAG, _TAG_PREFIX


class _PyDumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


if hasattr(yaml, "CSafeDumper"):

    class _Dumper(yaml.CSafeDumper):
        _resolved = {}

        def ignore_aliases(self, data):
            return True

        def resolve(self, kind, value, implicit):
            # The emitter asks, for every scalar, what its plain form would mean; the answer
            # only depends on the arguments, and pod specs repeat their scalars.
            if kind is not yaml.ScalarNode:
                return yaml.CSafeDumper.resolve(self, kind, value, implicit)
            key = (value, implicit)
            tag = self._resolved.get(key)
            if tag is None:
                tag = yaml.CSafeDumper.resolve(self, kind, value, implicit)
                if len(self._resolved) < 4096 and len(value) < 64:
                    self._resolved[key] = tag
            return tag

else:  # pragma: no cover - depends on the host
    _Dumper = _PyDumper


_DUMP_OPTIONS = {"allow_unicode": True, "width": 4096, "explicit_start": False}


def _to_node(data):
    """Plain data to YAML nodes, exactly as SafeRepresenter would (without its overhead)."""
    if isinstance(data, str):
        return yaml.ScalarNode(_STR_TAG, data)
    if isinstance(data, dict):
        return yaml.MappingNode(
            _MAP_TAG, [(_to_node(k), _to_node(v)) for k, v in data.items()], flow_style=False
        )
    if isinstance(data, list):
        return yaml.SequenceNode(_SEQ_TAG, [_to_node(v) for v in data], flow_style=False)
    if data is True or data is False:
        return yaml.ScalarNode(_TAG_PREFIX + "bool", "true" if data else "false")
    if data is None:
        return yaml.ScalarNode(_TAG_PREFIX + "null", "null")
    if type(data) is int:
        return yaml.ScalarNode(_TAG_PREFIX + "int", str(data))
    raise TypeError(type(data).__name__)


def dump_pod(pod, _dumper=None):
    """The rendered Pod as deterministic YAML text: what ``yaml.safe_dump(pod,
    sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)`` gives:
    block style, keys in the order the engine builds them, no anchors, no line folding.
    libyaml's emitter is used when present; the unit tests check the output is the same as
    PyYAML's own."""
    dumper = _dumper or _Dumper
    try:
        node = _to_node(pod)
    except TypeError:
        return yaml.dump(
            pod, Dumper=dumper, default_flow_style=False, sort_keys=False, **_DUMP_OPTIONS
        )
    return yaml.serialize(node, Dumper=dumper, **_DUMP_OPTIONS)
