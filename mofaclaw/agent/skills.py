"""Skills: SKILL.md files with YAML front matter, built in or in the workspace, summarized for the prompt."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mofaclaw.agent.tools.workspace_files import WorkspaceFiles
from mofaclaw.templates import templates_root

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Skill:
    name: str
    description: str
    path: str
    body: str
    always: bool = False
    missing: tuple[str, ...] = ()  # unmet requirements: "bin:ffmpeg", "env:GITHUB_TOKEN"

    @property
    def available(self) -> bool:
        return not self.missing


def parse_skill(text: str, path: str, fallback_name: str) -> Skill:
    meta: dict = {}
    body = text
    if text.startswith("---"):
        head, sep, rest = text[3:].partition("\n---")
        if sep:
            import yaml  # here: a gateway reads its skills on the first turn, not at start (~1 MB)

            try:
                loaded = yaml.safe_load(head)
                meta = loaded if isinstance(loaded, dict) else {}
            except yaml.YAMLError:
                log.warning("skill %s: invalid front matter, ignored", path)
            body = rest.lstrip("\n")
    requires = meta.get("requires") or {}
    missing = [f"bin:{b}" for b in requires.get("bins", []) or [] if shutil.which(str(b)) is None]
    missing += [f"env:{e}" for e in requires.get("env", []) or [] if not os.environ.get(str(e))]
    return Skill(
        name=str(meta.get("name") or fallback_name),
        description=str(meta.get("description") or "").strip(),
        path=path,
        body=body.strip(),
        always=bool(meta.get("always", False)),
        missing=tuple(missing),
    )


class SkillsLoader:
    """Built-in skills ship in the package; a workspace skill of the same name overrides one.
    Workspace skills are read through WorkspaceFiles (no symlinks, regular files, capped) on every
    call, each re-parsed only when its text changed. Blocking: call from a worker thread."""

    def __init__(self, workspace: Path) -> None:
        self.workspace_dir = workspace / "skills"
        self._files = WorkspaceFiles(workspace)
        self._builtin: dict[str, Skill] | None = None
        self._parsed: dict[str, tuple[str, Skill]] = {}

    def skills(self) -> list[Skill]:
        found = dict(self._builtins())
        for folder in self._files.subdirectories("skills"):
            rel = f"skills/{folder}/SKILL.md"
            text = self._files.read(rel)
            if text is None:
                continue
            cached = self._parsed.get(rel)
            if cached is None or cached[0] != text:
                cached = (text, parse_skill(text, str(self.workspace_dir / folder / "SKILL.md"), folder))
                self._parsed[rel] = cached
            found[cached[1].name] = cached[1]
        return sorted(found.values(), key=lambda s: s.name)

    def _builtins(self) -> dict[str, Skill]:
        if self._builtin is None:  # package data: read once
            found: dict[str, Skill] = {}
            for entry in sorted(templates_root().joinpath("skills").iterdir(), key=lambda e: e.name):
                skill_file = entry / "SKILL.md"
                if skill_file.is_file():
                    skill = parse_skill(skill_file.read_text("utf-8"), f"(built-in) {entry.name}/SKILL.md", entry.name)
                    found[skill.name] = skill
            self._builtin = found
        return self._builtin

    def prompt_section(self) -> str:
        """Always-on skills in full; the rest as a summary the agent can read on demand."""
        skills = self.skills()
        if not skills:
            return ""
        parts = [f"## Skill: {s.name}\n\n{s.body}" for s in skills if s.always and s.available]
        summary = []
        for s in skills:
            if s.always and s.available:
                continue
            state = "available" if s.available else f"unavailable (missing {', '.join(s.missing)})"
            summary.append(f"- **{s.name}** ({state}): {s.description} — read `{s.path}` to use it")
        if summary:
            parts.append("## Other skills\nRead a skill's file with read_file before using it.\n\n"
                         + "\n".join(summary))
        return "# Skills\n\n" + "\n\n".join(parts)
