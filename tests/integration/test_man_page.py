"""The man page (docs/dbgstub.1, its one source) against the program: every
option `dbgstub --help` prints is an item of the page's OPTIONS, and every
option the page names anywhere is one --help prints, so the two can't drift
apart. Also: groff formats the page without a warning, and --version prints
the version of CMakeLists.txt's project(). Quick: no target, no debugger."""
import os
import re
import shutil
import subprocess
import unittest

import harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAN = os.path.join(ROOT, "docs", "dbgstub.1")
# An option as --help prints it, and as roff writes it (\- for each dash).
HELP_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*[a-z]|-o)(?![\w-])")
MAN_OPTION = re.compile(r"(?<![\w-])((?:\\-){2}[a-z](?:[a-z]|\\-)*[a-z]|\\-o)(?![\w])")


def man_text():
    with open(MAN) as f:
        return f.read()


def roff_option(word):
    return word.replace("\\-", "-")


def options_section(text):
    """The OPTIONS section's item tags: the line after each .TP."""
    section = text.split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    lines = section.split("\n")
    tags = set()
    for i, line in enumerate(lines):
        if line == ".TP" and i + 1 < len(lines):
            # Only the tag's own option names, not the words around them.
            tags |= {roff_option(m) for m in MAN_OPTION.findall(lines[i + 1])}
    return tags


class ManPage(unittest.TestCase):
    def help_options(self):
        out = subprocess.run([harness.DBGSTUB, "--help"], capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        return set(HELP_OPTION.findall(out.stdout))

    def test_every_help_option_is_in_the_man_page(self):
        missing = self.help_options() - options_section(man_text())
        self.assertFalse(missing, f"--help prints options that docs/dbgstub.1's OPTIONS lacks: {sorted(missing)}")

    def test_every_man_page_option_is_in_help(self):
        named = {roff_option(m) for m in MAN_OPTION.findall(man_text())}
        # gdb's and ssh's own options in EXAMPLES are single-dash; `--` ends --wrapper.
        extra = named - self.help_options()
        self.assertFalse(extra, f"docs/dbgstub.1 names options that --help doesn't print: {sorted(extra)}")

    def test_the_check_sees_options(self):
        # A parser that found nothing would pass the two tests above.
        self.assertIn("--once", self.help_options())
        self.assertIn("--wrapper", options_section(man_text()))
        self.assertIn("-o", options_section(man_text()))
        self.assertGreater(len(self.help_options()), 20)

    @unittest.skipUnless(shutil.which("groff"), "groff is not installed")
    def test_groff_formats_it_without_warnings(self):
        out = subprocess.run(["groff", "-man", "-ww", "-z", MAN], capture_output=True, text=True, timeout=60)
        self.assertEqual((out.returncode, out.stderr), (0, ""))

    def test_version_is_the_projects(self):
        with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
            version = re.search(r"^project\(dbgstub VERSION ([0-9.]+)", f.read(), re.M).group(1)
        out = subprocess.run([harness.DBGSTUB, "--version"], capture_output=True, text=True, timeout=20)
        self.assertEqual((out.returncode, out.stdout), (0, f"dbgstub {version}\n"))


if __name__ == "__main__":
    unittest.main()
