"""Configuration: a model-zoo yaml (values, help, choices) plus type-checked command-line overrides.

The yaml holds three documents: the values, a help text per key and the allowed values
(keyed by dotted path for nested options): a list of choices, or for a numeric key a range
such as ``"[1, inf)"``, ``"(0, 1]"`` or ``"-1 or [1, inf)"`` (applied to each element of a
list value). Choices and ranges are checked before anything runs. ``--key=value`` (or ``--key value``) overrides a
top-level key and ``--section.key=value`` a nested one; the override is parsed as YAML and
must have the type of the default. ``--config_path`` merges another yaml (several are merged
in order). A few keys of the original model zoo are not values here (``SEED_KEYS``): they
stay accepted with their documented meaning, and their help text says how.
"""
import ast
import copy
import difflib
import logging
import os
import re
import sys

import yaml

logger = logging.getLogger(__name__)

_DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "default_config.yaml")
DEFAULT_CONFIG_PATH = os.path.normpath(_DEFAULT_PATH)

# The original model zoo writes arrays as numpy expressions; accept that form without eval().
_NP_ARRAY = re.compile(r"^\s*np\.array\(\s*(?P<lit>\[.*\])\s*(?:,\s*dtype\s*=\s*np\.\w+\s*)?\)"
                       r"\s*(?:\.reshape\((?P<shape>[\d\s,\-]+)\))?\s*$", re.S)


# Keys of the original model zoo that this configuration computes, ignores or spells once:
# key -> (kind, argument). "derived": computed by derive(), a given value must agree (argument:
# a value of its type); "ignored": accepted and unused (argument: a value of its type); "only":
# the one value this code implements; "alias": another name of the key given as argument.
SEED_KEYS = {
    "dataset_config.output_res": ("derived", [0, 0]),
    "net_config.dense_hp": ("ignored", True),
    "train_config.optimizer": ("only", "Adam"),
    "train_config.PolyDecay.eps": ("alias", "train_config.Adam.eps"),
    "train_config.MultiDecay.eps": ("alias", "train_config.Adam.eps"),
}


class ConfigError(ValueError):
    """A configuration file or command-line option is invalid."""


class Config:
    """Attribute access to a nested dict; nested dicts become Config objects."""

    def __init__(self, values):
        for key, value in values.items():
            setattr(self, key, Config(value) if isinstance(value, dict) else value)

    def to_dict(self):
        return {k: (v.to_dict() if isinstance(v, Config) else copy.deepcopy(v)) for k, v in self.__dict__.items()}

    def get(self, dotted, default=None):
        node = self
        for part in dotted.split("."):
            if not isinstance(node, Config) or not hasattr(node, part):
                return default
            node = getattr(node, part)
        return node

    def __repr__(self):
        return "Config(%s)" % self.to_dict()

    def __str__(self):
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


def _parse_np_array(text, where):
    """Turn ``np.array([...], dtype=...)[.reshape(...)]`` text into the (nested) list it holds."""
    match = _NP_ARRAY.match(text)
    if not match:
        return text
    try:
        values = ast.literal_eval(match.group("lit"))
    except (ValueError, SyntaxError) as err:
        raise ConfigError("%s: cannot parse array literal %r: %s" % (where, text, err)) from err
    return values  # a trailing .reshape() only served broadcasting; consumers reshape themselves


def _normalise(node, where=""):
    """Convert the original's numpy-expression strings to lists, recursively."""
    if isinstance(node, dict):
        return {k: _normalise(v, "%s.%s" % (where, k) if where else k) for k, v in node.items()}
    if isinstance(node, str) and node.lstrip().startswith("np.array"):
        return _parse_np_array(node, where)
    return node


def load_yaml(path):
    """Read the three documents of a model-zoo yaml: (values, helper, choices)."""
    if not os.path.isfile(path):
        raise ConfigError("config file not found: %s" % path)
    with open(path, "r", encoding="utf-8") as f:
        try:
            docs = [d for d in yaml.safe_load_all(f.read())]
        except yaml.YAMLError as err:
            raise ConfigError("cannot parse %s: %s" % (path, err)) from err
    if not docs or not isinstance(docs[0], dict):
        raise ConfigError("%s: the first document must be a mapping of option values" % path)
    values = _normalise(docs[0])
    helper = docs[1] if len(docs) > 1 and isinstance(docs[1], dict) else {}
    choices = docs[2] if len(docs) > 2 and isinstance(docs[2], dict) else {}
    return values, helper, choices


def _flatten(node, prefix=""):
    """{'a': {'b': 1}} -> {'a.b': 1}; dict-valued keys are kept as sections, not leaves."""
    out = {}
    for key, value in node.items():
        path = prefix + str(key)
        if isinstance(value, dict):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _type_name(value):
    return type(value).__name__


def _coerce(raw, default, key):
    """Parse the command-line text ``raw`` into the type of ``default``."""
    if isinstance(default, bool):
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ConfigError("--%s expects true or false, got %r" % (key, raw))
    if isinstance(default, str):
        return raw
    try:
        value = yaml.safe_load(raw) if isinstance(raw, str) else raw
    except yaml.YAMLError as err:
        raise ConfigError("--%s: cannot parse %r: %s" % (key, raw, err)) from err
    return check_type(value, default, key)


def check_type(value, default, key):
    """Return ``value`` converted to the type of ``default`` or raise ConfigError naming ``key``."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list):
        if isinstance(value, (list, tuple)):
            value = list(value)
            if default and not isinstance(default[0], (list, dict)):
                return [check_type(v, default[0], "%s[%d]" % (key, i)) for i, v in enumerate(value)]
            return value
    elif isinstance(default, dict):
        raise ConfigError("--%s is a section; override its keys with --%s.<key>=value" % (key, key))
    raise ConfigError("--%s expects %s (like the default %r), got %r"
                      % (key, _type_name(default), default, value))


def _set_dotted(values, dotted, value):
    node = values
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def _split_argv(argv):
    """Yield (key, raw value) pairs from ``--key=value`` / ``--key value`` arguments."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError("unexpected argument %r: options are given as --key=value" % arg)
        body = arg[2:]
        if "=" in body:
            key, raw = body.split("=", 1)
        else:
            key = body
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                raw = argv[i + 1]
                i += 1
            else:
                raw = "true"  # a bare flag switches a boolean on
        yield key, raw
        i += 1


def format_help(values, helper, choices, script=None):
    lines = ["usage: python %s [--config_path=FILE] [--key=value ...] [--section.key=value ...]"
             % (script or os.path.basename(sys.argv[0])), "", "options (default, choices, help):"]
    flat_help = _flatten(helper) if helper else {}
    for key, default in _flatten(values).items():
        text = flat_help.get(key, "")
        allowed = choices.get(key)
        shown = repr(default)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        line = "  --%s=%s" % (key, shown)
        if isinstance(allowed, str):
            line += "  range %s" % allowed
        elif allowed:
            line += "  {%s}" % ", ".join(str(c) for c in allowed)
        lines.append(line)
        if text:
            lines.append("        " + str(text))
    lines += ["", "accepted from the original model zoo's configuration:"]
    for key in SEED_KEYS:
        lines.append("  --%s" % key)
        if flat_help.get(key):
            lines.append("        " + str(flat_help[key]))
    return "\n".join(lines)


def derive(values):
    """Values that follow from others: {dotted key: value}; output_res = input_res_train / down_ratio."""
    ratio = values["net_config"]["down_ratio"]
    res = check_input_res(values["dataset_config"]["input_res_train"], "dataset_config.input_res_train")
    return {"dataset_config.output_res": [r // ratio for r in res]}


_INTERVAL = re.compile(r"^([\[(])\s*(-?inf|[-+.\deE]+)\s*,\s*(-?inf|[-+.\deE]+)\s*([\])])$")


def _in_part(value, part, key):
    """Whether ``value`` lies in one alternative of a range: a number or an interval like [1, inf)."""
    match = _INTERVAL.match(part)
    if not match:
        try:
            return value == float(part)
        except ValueError:
            raise ConfigError("range of %s in default_config.yaml is malformed: %r" % (key, part)) from None
    low_kind, low, high, high_kind = match.groups()
    low, high = float(low), float(high)
    above = value >= low if low_kind == "[" else value > low
    below = value <= high if high_kind == "]" else value < high
    return above and below


def check_range(key, value, spec):
    """Raise ConfigError naming ``key``, ``value`` and the range ``spec`` when a number lies outside it.

    ``spec`` alternatives are joined by " or "; a list value is checked element by element.
    """
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if not any(_in_part(float(item), part.strip(), key) for part in spec.split(" or ")):
            shown = "%r (element %r)" % (value, item) if isinstance(value, list) else repr(value)
            raise ConfigError("--%s=%s is out of range: allowed %s" % (key, shown, spec))


INPUT_MULTIPLE = 32  # the backbone's output stride: inputs must divide into it


def check_input_res(res, key):
    """``res`` as [h, w] ints, each a positive multiple of the output stride 32; ConfigError naming ``key``."""
    res = list(res)
    if len(res) != 2 or any(int(r) != r or r <= 0 or r % INPUT_MULTIPLE for r in res):
        raise ConfigError("%s must be [h, w], positive multiples of %d, got %r" % (key, INPUT_MULTIPLE, res))
    return [int(r) for r in res]


def _sections(values, prefix=""):
    """Dotted names of the sections (dict-valued keys) of ``values``."""
    found = set()
    for key, value in values.items():
        if isinstance(value, dict):
            found.add(prefix + key)
            found |= _sections(value, prefix + key + ".")
    return found


class _Builder:
    """Applies overrides (yaml overlays, then the command line) to the default values."""

    def __init__(self, values, helper):
        self.values, self.helper = values, _flatten(helper)
        self.given = {}  # derived seed key -> value given for it

    def _unknown(self, key, where):
        flat = list(_flatten(self.values)) + list(SEED_KEYS)
        if where:
            close = difflib.get_close_matches(key, flat, n=3, cutoff=0.6)
            hint = "; did you mean %s?" % " or ".join(close) if close else ""
            return ConfigError("%s: unknown key %s%s" % (where, key, hint))
        if key in _sections(self.values):
            return ConfigError("--%s is a section; override its keys with --%s.<key>=value" % (key, key))
        close = difflib.get_close_matches(key, flat, n=3, cutoff=0.6)
        hint = "; did you mean %s?" % " or ".join("--" + c for c in close) if close else \
            "; run with --help to list the options"
        return ConfigError("unknown option --%s%s" % (key, hint))

    def set(self, key, value, where=None, raw=False):
        """Set dotted ``key`` to ``value`` (command-line text with ``raw``); ``where`` names a yaml."""
        name = "%s (in %s)" % (key, where) if where else key
        if key in _sections(self.values):
            if where:
                raise ConfigError("%s: %s is a section and must be a mapping" % (where, key))
            raise self._unknown(key, where)
        flat = _flatten(self.values)
        kind, arg = SEED_KEYS.get(key, (None, None))
        if kind == "alias":
            key, kind = arg, None
        if kind is None and key not in flat:
            raise self._unknown(key, where)
        template = flat[key] if kind is None else arg
        value = _coerce(value, template, name) if raw else check_type(value, template, name)
        if kind is None:
            _set_dotted(self.values, key, value)
        elif kind == "derived":
            self.given[key] = value
        elif kind == "ignored":
            logger.warning("%s=%r: %s", name, value, self.helper.get(key, "ignored"))
        elif value != arg:
            raise ConfigError("--%s=%s is not available: %s" % (name, value, self.helper.get(key, "")))

    def merge(self, overlay, path):
        """Merge a partial yaml ``overlay`` (nested dicts) read from ``path``."""
        for key, value in _flatten(overlay).items():
            self.set(key, value, where=path)

    def finish(self, choices):
        """Check the choices and fill the derived keys (a value given for one must agree)."""
        flat = _flatten(self.values)
        for key, allowed in choices.items():
            if key not in flat:
                continue
            if isinstance(allowed, str):
                check_range(key, flat[key], allowed)
            elif flat[key] not in allowed:
                raise ConfigError("--%s=%r is not one of %s" % (key, flat[key], allowed))
        ds, net = self.values["dataset_config"], self.values["net_config"]
        for key, value in derive(self.values).items():
            if key in self.given and self.given[key] != value:
                raise ConfigError("--%s=%s must equal input_res_train %s / down_ratio %d = %s"
                                  % (key, self.given[key], ds["input_res_train"], net["down_ratio"], value))
            _set_dotted(self.values, key, value)
        return self.values


def get_config(argv=None, config_path=None, script=None):
    """Build the configuration from the yaml and ``argv`` (default: sys.argv[1:]).

    Each yaml given by ``--config_path`` (or ``config_path``) is merged onto default_config.yaml
    in order, so it may hold only the keys it changes; ``cfg.config_path`` is the last one.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pairs = list(_split_argv([a for a in argv if a not in ("-h", "--help")]))
    paths = ([config_path] if config_path else []) + [raw for key, raw in pairs if key == "config_path"]
    values, helper, choices = load_yaml(DEFAULT_CONFIG_PATH)
    builder = _Builder(values, helper)
    path = DEFAULT_CONFIG_PATH
    for path in [os.path.abspath(p) for p in paths]:
        if path == DEFAULT_CONFIG_PATH:
            continue
        overlay, extra_help, extra_choices = load_yaml(path)
        builder.merge(overlay, path)
        choices.update(extra_choices)
        helper.update({k: v for k, v in extra_help.items() if not isinstance(v, dict)})
    if "-h" in argv or "--help" in argv:
        print(format_help(values, helper, choices, script))
        sys.exit(0)
    for key, raw in pairs:
        if key != "config_path":
            builder.set(key, raw, raw=True)
    values = builder.finish(choices)
    values["config_path"] = path
    return Config(values)
