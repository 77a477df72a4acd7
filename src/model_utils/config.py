"""Configuration: a model-zoo yaml (values, help, choices) plus type-checked command-line overrides.

The yaml holds three documents: the values, a help text per key and the allowed choices
(keyed by dotted path for nested options). ``--key=value`` (or ``--key value``) overrides a
top-level key and ``--section.key=value`` a nested one; the override is parsed as YAML and
must have the type of the default. ``--config_path`` selects another yaml.
"""
import ast
import copy
import difflib
import os
import re
import sys

import yaml

_DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "default_config.yaml")
DEFAULT_CONFIG_PATH = os.path.normpath(_DEFAULT_PATH)

# The original model zoo writes arrays as numpy expressions; accept that form without eval().
_NP_ARRAY = re.compile(r"^\s*np\.array\(\s*(?P<lit>\[.*\])\s*(?:,\s*dtype\s*=\s*np\.\w+\s*)?\)"
                       r"\s*(?:\.reshape\((?P<shape>[\d\s,\-]+)\))?\s*$", re.S)


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
        if allowed:
            line += "  {%s}" % ", ".join(str(c) for c in allowed)
        lines.append(line)
        if text:
            lines.append("        " + str(text))
    return "\n".join(lines)


def derive(cfg):
    """Fill values that follow from others: output_res = input_res_train / down_ratio."""
    ds_cfg, net_cfg = cfg["dataset_config"], cfg["net_config"]
    ratio = net_cfg["down_ratio"]
    res = check_input_res(ds_cfg["input_res_train"], "dataset_config.input_res_train")
    return [r // ratio for r in res]


INPUT_MULTIPLE = 32  # the backbone's output stride: inputs must divide into it


def check_input_res(res, key):
    """``res`` as [h, w] ints, each a positive multiple of the output stride 32; ConfigError naming ``key``."""
    res = list(res)
    if len(res) != 2 or any(int(r) != r or r <= 0 or r % INPUT_MULTIPLE for r in res):
        raise ConfigError("%s must be [h, w], positive multiples of %d, got %r" % (key, INPUT_MULTIPLE, res))
    return [int(r) for r in res]


def _merge(values, overlay, path, prefix=""):
    """Merge a partial yaml ``overlay`` onto ``values`` (in place), type-checking every key."""
    for key, value in overlay.items():
        dotted = prefix + str(key)
        if key not in values:
            close = difflib.get_close_matches(dotted, list(_flatten(values, prefix)), n=3, cutoff=0.6)
            hint = "; did you mean %s?" % " or ".join(close) if close else ""
            raise ConfigError("%s: unknown key %s%s" % (path, dotted, hint))
        if isinstance(values[key], dict):
            if not isinstance(value, dict):
                raise ConfigError("%s: %s is a section and must be a mapping" % (path, dotted))
            _merge(values[key], value, path, dotted + ".")
        else:
            values[key] = check_type(value, values[key], "%s (in %s)" % (dotted, path))


def get_config(argv=None, config_path=None, script=None):
    """Build the configuration from the yaml and ``argv`` (default: sys.argv[1:]).

    A yaml given by ``--config_path`` (or ``config_path``) is merged onto default_config.yaml,
    so it may hold only the keys it changes.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pairs = list(_split_argv([a for a in argv if a not in ("-h", "--help")]))
    for key, raw in pairs:
        if key == "config_path":
            config_path = raw
    values, helper, choices = load_yaml(DEFAULT_CONFIG_PATH)
    path = os.path.abspath(config_path) if config_path else DEFAULT_CONFIG_PATH
    if path != DEFAULT_CONFIG_PATH:
        overlay, extra_help, extra_choices = load_yaml(path)
        _merge(values, overlay, path)
        choices.update(extra_choices)
        helper.update({k: v for k, v in extra_help.items() if not isinstance(v, dict)})
    if "-h" in argv or "--help" in argv:
        print(format_help(values, helper, choices, script))
        sys.exit(0)
    flat = _flatten(values)
    given = set()
    for key, raw in pairs:
        if key == "config_path":
            continue
        if key not in flat:
            if isinstance(values.get(key), dict):
                raise ConfigError("--%s is a section; override its keys with --%s.<key>=value" % (key, key))
            close = difflib.get_close_matches(key, list(flat), n=3, cutoff=0.6)
            hint = "; did you mean %s?" % " or ".join("--" + c for c in close) if close else \
                "; run with --help to list the options"
            raise ConfigError("unknown option --%s%s" % (key, hint))
        _set_dotted(values, key, _coerce(raw, flat[key], key))
        given.add(key)
    flat = _flatten(values)
    for key, allowed in choices.items():
        if key in flat and flat[key] not in allowed:
            raise ConfigError("--%s=%r is not one of %s" % (key, flat[key], allowed))
    derived = derive(values)
    if derived != values["dataset_config"]["output_res"]:
        if "dataset_config.output_res" in given:
            raise ConfigError("--dataset_config.output_res=%s must equal input_res_train %s / down_ratio %d = %s"
                              % (values["dataset_config"]["output_res"], values["dataset_config"]["input_res_train"],
                                 values["net_config"]["down_ratio"], derived))
        values["dataset_config"]["output_res"] = derived
    values["config_path"] = path
    return Config(values)
