"""Load `mappings/*.yaml` into compiled Sources, or say in one line per problem what is wrong.

Each problem reads `mappings/<file>: <key>: <what is expected>`, so a CRM admin can fix a
file without reading code. The app refuses to start while any problem remains.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jmespath
import yaml
from marshmallow import Schema, ValidationError

from ..crm import signatures as auth
from ..recall import Target
from ..settings import ConfigError, Settings
from ..timing.calling_hours import CallingHours, CallingHoursError, load_calling_hours
from ..timing.rules import Caps
from .lookups import Lookup, LookupStep
from .schema import (
    AnswerBlock,
    CampaignRecordBlock,
    DateOptions,
    FieldSpec,
    HandshakeBlock,
    LookupBlock,
    MappingFile,
    MaxRecalls,
    OAuth2Block,
    PhoneOptions,
    RecallSpec,
    WolkvoxBlock,
    WritebackEntry,
)
from .source import CampaignRecord, Source, compile_rule, rules_for
from .writeback import Writeback, WritebackTemplateError, compile_writeback

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")  # ${NAME} or ${NAME:-default}


def load_sources(directory: str | Path, settings: Settings) -> dict[str, Source]:
    """Every `*.yaml` in `directory`, or only those named in SOURCES (a comma list)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError([f"{folder}: mappings folder not found (set MAPPINGS_DIR)"])
    paths = sorted(folder.glob("*.y*ml"))
    chosen = [n.strip() for n in getattr(settings, "sources", "").split(",") if n.strip()]
    if chosen:
        known = {p.stem: p for p in paths}
        missing = [n for n in chosen if n not in known]
        if missing:
            raise ConfigError([f"SOURCES: no mapping file for {', '.join(missing)} in {folder} "
                               f"(known: {', '.join(sorted(known))})"])
        paths = [known[n] for n in chosen]
    sources: dict[str, Source] = {}
    problems: list[str] = []
    for path in paths:
        try:
            sources[path.stem] = load_source(path, settings)
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        raise ConfigError(problems)
    return sources


def load_source(path: Path, settings: Settings) -> Source:
    """One mapping file -> a Source; ConfigError lists every problem found in it."""
    label = _label(path)
    if not SOURCE_NAME.match(path.stem):
        raise ConfigError([f"{label}: file name must be lower-case letters, digits, - or _ "
                           "(it becomes the URL /hooks/<name>)"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        where = getattr(err, "problem_mark", None)
        at = f" (line {where.line + 1})" if where else ""
        reason = getattr(err, "problem", None) or err
        raise ConfigError([f"{label}: not readable YAML{at}: {reason}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{label}: expected a mapping of keys (description, format, auth, "
                           "events, event_id, when, recall)"])
    problems: list[str] = []
    entries = raw.pop("writeback", None)
    expanded = _expand(raw, settings.environ, "", problems)
    offs: list[str] = []
    if entries is not None:  # an entry's missing credentials turn it off, not the file
        expanded["writeback"], offs = _expand_writebacks(entries, settings.environ, problems)
    try:
        spec = MappingFile().load(expanded)
    except ValidationError as err:
        problems += [f"{k}: {m}" for k, m in _flatten(err.normalized_messages(), "")]
        raise ConfigError([f"{label}: {p}" for p in problems]) from None
    if problems:
        raise ConfigError([f"{label}: {p}" for p in problems])
    try:
        verifier = auth.build_verifier(spec["auth"])
    except auth.AuthConfigError as err:
        raise ConfigError([f"{label}: {err}"]) from None
    target = _target(spec["wolkvox"], settings, label)
    hours = _hours(spec, raw, settings, target.timezone, label)
    caps = spec["max_recalls"]
    lookup = spec["lookup"]
    writebacks = _writebacks(spec["writeback"], offs, label)
    return Source(
        name=path.stem,
        description=spec["description"],
        format=spec["format"],
        verifier=verifier,
        events=jmespath.compile(spec["events"]),
        event_id=jmespath.compile(spec["event_id"]) if spec["event_id"] else None,
        when=jmespath.compile(spec["when"]) if spec["when"] else None,
        rules=rules_for(spec["recall"], target.timezone),
        target=target,
        hours=hours,
        caps=Caps(caps["per_day"], caps["per_week"]) if caps else None,
        lookup=_lookup(lookup) if lookup else None,
        rate=spec["rate"],
        unflatten=spec["unflatten"],
        headers=tuple(name.lower() for name in spec["headers"]),
        occurred_at=jmespath.compile(spec["occurred_at"]) if spec["occurred_at"] else None,
        handshake=(jmespath.compile(spec["handshake"]["when"]),
                   jmespath.compile(spec["handshake"]["answer"])) if spec["handshake"] else None,
        answer_wait=spec["answer"]["wait"] if spec["answer"] and
        spec["answer"]["after"] == "delivered" else 0.0,
        answer_status=spec["answer"]["status"] if spec["answer"] else 202,
        writebacks=writebacks,
        record=_record(spec["campaign_record"], target.timezone),
    )


def _record(block: Mapping[str, Any] | None, timezone: str) -> CampaignRecord | None:
    if block is None or block["add"] == "off":
        return None
    return CampaignRecord(block["add"], block["campaign_status"],
                          tuple(compile_rule(name, spec, timezone)
                                for name, spec in block["record_fields"].items()))


def _expand_writebacks(entries: Any, environ: Mapping[str, str],
                       problems: list[str]) -> tuple[Any, list[str]]:
    """Each `writeback:` entry with ${NAME} replaced; an entry naming a variable that is not
    set is kept off (its reason beside it), so a shipped write-back waits for its credentials
    without stopping the bridge. An off entry is still checked: its missing values read as
    placeholders (a URL's as https://unset.invalid)."""
    if not isinstance(entries, list):
        return entries, []
    expanded, offs = [], []
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and True in entry:  # YAML 1.1 reads a bare `on:` as true
            entry = {("on" if key is True else key): value for key, value in entry.items()}
        texts = list(_strings(entry))
        missing = list(dict.fromkeys(
            match.group(1) for text in texts for match in ENV_REF.finditer(text)
            if not environ.get(match.group(1)) and match.group(2) is None))
        stand_in = {name: "https://unset.invalid" if any(t.startswith("${" + name) for t in texts)
                    else "unset" for name in missing}
        expanded.append(_expand(entry, {**environ, **stand_in}, f"writeback[{index}]", problems))
        offs.append(f"{', '.join(missing)} not set" if missing else "")
    return expanded, offs


def _strings(value: Any) -> Any:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _writebacks(entries: list[dict[str, Any]], offs: list[str],
                label: str) -> tuple[Writeback, ...]:
    compiled, problems = [], []
    for index, entry in enumerate(entries):
        try:
            compiled.append(compile_writeback(entry, index, offs[index] if offs else ""))
        except WritebackTemplateError as err:
            problems.append(f"{label}: writeback[{index}].{err}")
    names = [w.name for w in compiled]
    problems += [f"{label}: writeback: two entries are named {name!r} (names must differ)"
                 for name in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise ConfigError(problems)
    return tuple(compiled)


def _lookup(block: Mapping[str, Any]) -> Lookup:
    """The `lookup:` block's steps, compiled; the older HubSpot form is one step."""
    steps = block["steps"]
    if steps is None:  # kind: hubspot-contact, as mappings before generic lookups wrote it
        query = f"?properties={','.join(block['properties'])}" if block["properties"] else ""
        steps = [{"url": f"{block['base_url'].rstrip('/')}/crm/v3/objects/contacts/{{id}}{query}",
                  "id": block["object_id"], "pick": "properties", "into": block["into"],
                  "name": "HubSpot contact",
                  "headers": {"Authorization": f"Bearer {block['token']}"}}]
    return Lookup(tuple(LookupStep(url=step["url"], id=jmespath.compile(step["id"]),
                                   headers=dict(step.get("headers") or {}),
                                   pick=jmespath.compile(step.get("pick") or "@"),
                                   into=step["into"], name=step.get("name") or "")
                        for step in steps))


OFF = (None, False, "none", "off")  # calling_hours: none turns the CALLING_HOURS default off


def _hours(spec: Mapping[str, Any], raw: Mapping[str, Any], settings: Settings, timezone: str,
           label: str) -> CallingHours | None:
    """The source's calling hours: its own `calling_hours:`, else CALLING_HOURS, else none."""
    if "calling_hours" in raw:
        value, key = spec["calling_hours"], "calling_hours"
    else:
        value, key = default_calling_hours(getattr(settings, "calling_hours", "")), "CALLING_HOURS"
    if value in OFF or value == "":
        return None
    try:
        return load_calling_hours(value, timezone, key=key)
    except CallingHoursError as err:
        raise ConfigError([f"{label}: {err}"]) from None


def default_calling_hours(setting: str) -> Any:
    """CALLING_HOURS: a preset name (co-ley-2300), or inline YAML ({preset: business, ...})."""
    text = setting.strip()
    if not text.startswith("{"):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError([f"CALLING_HOURS: not readable YAML: {err}"]) from None


def _target(block: Mapping[str, str], settings: Settings, label: str) -> Target:
    token = block.get("token") or settings.wolkvox_token
    server = block.get("server") or settings.wolkvox_server
    base_url = block.get("base_url") or settings.wolkvox_base_url
    if not token:
        raise ConfigError([f"{label}: wolkvox.token: no token; set WOLKVOX_TOKEN "
                           "(or wolkvox.token: ${NAME} in this file)"])
    if "{server}" in base_url and not server:
        raise ConfigError([f"{label}: wolkvox.server: no server code; set WOLKVOX_SERVER "
                           "(4 digits, e.g. 0005) or WOLKVOX_BASE_URL"])
    return Target(base_url=base_url.format(server=server.zfill(4)).rstrip("/"), token=token,
                  timezone=block.get("timezone") or settings.wolkvox_timezone)


def _expand(value: Any, environ: Mapping[str, str], key: str, problems: list[str]) -> Any:
    """Replace ${NAME} from the environment everywhere; a missing NAME is a problem."""
    if isinstance(value, dict):
        return {k: _expand(v, environ, f"{key}.{k}" if key else str(k), problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, f"{key}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if not environ.get(name) and default is not None:
            return default
        if not environ.get(name):
            problems.append(f"{key}: environment variable {name} is not set (export {name}=...)")
            return ""
        return environ[name]

    return ENV_REF.sub(substitute, value)


# Where each nested key's known keys come from, to suggest a fix for a misspelt one.
_SCHEMAS: dict[str, type[Schema]] = {
    "": MappingFile, "recall": RecallSpec, "recall.*": FieldSpec,
    "recall.*.phone": PhoneOptions, "recall.*.date": DateOptions, "wolkvox": WolkvoxBlock,
    "lookup": LookupBlock, "max_recalls": MaxRecalls, "handshake": HandshakeBlock,
    "answer": AnswerBlock, "writeback": WritebackEntry, "writeback.oauth2": OAuth2Block,
    "campaign_record": CampaignRecordBlock, "campaign_record.fields.*": FieldSpec,
}


def _flatten(messages: Any, key: str) -> list[tuple[str, str]]:
    if isinstance(messages, dict):
        out: list[tuple[str, str]] = []
        for k, v in messages.items():
            sub = f"{key}.{k}" if key and k != "_schema" else (key or str(k))
            out += _flatten(v, sub)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(key, _explain(key, m)) for m in messages]
    if isinstance(messages, list):
        return [item for m in messages for item in _flatten(m, key)]
    return [(key, str(messages))]


def _explain(key: str, message: str) -> str:
    if message == "Unknown field.":
        parent, _, name = key.rpartition(".")
        known = _known_keys(parent)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown key{hint} (expected one of: {', '.join(known)})"
    if message == "Missing data for required field.":
        return "missing (required)"
    return message.rstrip(".")


def _known_keys(parent: str) -> list[str]:
    parts = [p for p in parent.split(".") if not p.isdigit()] if parent else []  # list items
    pattern = ".".join("*" if i == 1 and parts[0] == "recall" else p for i, p in enumerate(parts))
    schema = _SCHEMAS.get(pattern)
    return list(schema().fields) if schema else []


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name

