"""The configuration's defaults as plain data: Invoke's defaults level, and documentation.

Kept free of imports so that ``invoke --list`` pays nothing for it.
"""

CONVENTIONAL_TYPES = [
    "feat",
    "fix",
    "docs",
    "style",
    "refactor",
    "perf",
    "test",
    "build",
    "ci",
    "chore",
    "revert",
]

DEFAULTS = {
    "checklist": {
        "version_file": "VERSION",
        "changelog": "CHANGELOG.md",
        "convention": "conventional",  # or "none" to skip the commit check
        "types": CONVENTIONAL_TYPES,
        "allow_merge_commits": True,
        "allow_revert_commits": True,
        "branches": ["main", "master"],  # glob patterns: "release/*"
        "tag_prefix": "v",
        "commits_from": "",  # with no release tag yet: check from this ref, not all history
        "changelog_unreleased_ok": False,
        "require_clean": True,
        "run_tests": False,
    },
    "release": {
        "remote": "origin",
        "commit_message": "chore(release): {tag}",
        "tag_message": "Release {tag}",
    },
    "lint": [],
    "test": [],
    "environments": {},  # name -> {target: compose, hosts: [...], path: ...}: see the README
}
